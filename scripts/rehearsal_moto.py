#!/usr/bin/env python3
"""moto server for the deploy rehearsal, with two additions to moto 5.2.5's
CloudFormation:

- executing a change set updates the stack's resources but not its outputs (they stay
  as computed before any resource existed), so `DescribeStacks` shows no `Outputs` and
  `sam deploy` rejects its own managed bucket stack. The fix recomputes the outputs
  after the change set is applied, as CloudFormation does.
- `UpdateTerminationProtection` is missing (moto answers 500); it is added, setting
  what `DescribeStacks` reports as `EnableTerminationProtection`.

    python rehearsal_moto.py HOST PORT    (with moto's virtualenv Python)
"""

import sys

from moto.cloudformation import models
from moto.cloudformation.responses import CloudFormationResponse
from moto.core.responses import ActionResult
from moto.server import main

_apply = models.ChangeSet.apply


def apply_and_recompute_outputs(self):
    _apply(self)
    self.stack.template = self.template
    self.stack._parse_template()
    self.stack.output_map = self.stack._create_output_map()


models.ChangeSet.apply = apply_and_recompute_outputs


def update_termination_protection(self):
    stack = self.cloudformation_backend.get_stack(self._get_param("StackName"))
    stack.enable_termination_protection = str(self._get_param("EnableTerminationProtection")).lower() == "true"
    return ActionResult({"StackId": stack.stack_id})


CloudFormationResponse.update_termination_protection = update_termination_protection

if __name__ == "__main__":
    main(["-H", sys.argv[1], "-p", sys.argv[2]])
