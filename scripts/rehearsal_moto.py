#!/usr/bin/env python3
"""moto server for the deploy rehearsal, with one fix of moto 5.2.5's CloudFormation:
executing a change set updates the stack's resources but not its outputs (they stay as
computed before any resource existed), so `DescribeStacks` shows no `Outputs` and
`sam deploy` rejects its own managed bucket stack. The fix recomputes the outputs after
the change set is applied, as CloudFormation does.

    python rehearsal_moto.py HOST PORT    (with moto's virtualenv Python)
"""

import sys

from moto.cloudformation import models
from moto.server import main

_apply = models.ChangeSet.apply


def apply_and_recompute_outputs(self):
    _apply(self)
    self.stack.template = self.template
    self.stack._parse_template()
    self.stack.output_map = self.stack._create_output_map()


models.ChangeSet.apply = apply_and_recompute_outputs

if __name__ == "__main__":
    main(["-H", sys.argv[1], "-p", sys.argv[2]])
