#!/usr/bin/env python3
"""moto server for the deploy rehearsal, with two additions to moto 5.2.5's
CloudFormation:

- executing a change set updates the stack's resources but not its outputs (they stay
  as computed before any resource existed), so `DescribeStacks` shows no `Outputs` and
  `sam deploy` rejects its own managed bucket stack. The fix recomputes the outputs
  after the change set is applied, as CloudFormation does.
- `UpdateTerminationProtection` is missing (moto answers 500); it is added, setting
  what `DescribeStacks` reports as `EnableTerminationProtection`.
- `AWS::Lambda::Alias` is missing and `AWS::Lambda::Version` has no `Version`
  attribute, both of which SAM's AutoPublishAlias generates (the `live` alias every
  trigger invokes): the alias is added on moto's own Lambda aliases (created, or moved
  to the new version on update; `Ref` is its ARN), and `!GetAtt V.Version` answers the
  version moto published. CodeDeploy (DeploymentPreference) stays stubbed.

    python rehearsal_moto.py HOST PORT    (with moto's virtualenv Python)
"""

import sys

from moto.cloudformation import models
from moto.cloudformation.responses import CloudFormationResponse
from moto.awslambda import models as lambda_models
from moto.core.common_models import CloudFormationModel
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

lambda_models.LambdaVersion.has_cfn_attr = classmethod(lambda cls, attr: attr == "Version")
lambda_models.LambdaVersion.get_cfn_attribute = lambda self, attr: self.version


class LambdaAliasResource(CloudFormationModel):
    # moto's model metaclass names the service after the module's second component.
    __module__ = "moto.awslambda.rehearsal"

    def __init__(self, alias):
        self.alias = alias

    @staticmethod
    def cloudformation_type():
        return "AWS::Lambda::Alias"

    @property
    def physical_resource_id(self):
        return self.alias.arn

    @classmethod
    def create_from_cloudformation_json(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs):
        props = cloudformation_json["Properties"]
        backend = lambda_models.lambda_backends[account_id][region_name]
        name, function, version = props["Name"], props["FunctionName"], str(props["FunctionVersion"])
        try:
            alias = backend.get_alias(name, function)
            alias.update(None, version, None)
        except Exception:
            alias = backend.create_alias(name, function, version, props.get("Description", ""), None)
        return cls(alias)

    @classmethod
    def update_from_cloudformation_json(cls, original_resource, new_resource_name, cloudformation_json, account_id, region_name):
        return cls.create_from_cloudformation_json(new_resource_name, cloudformation_json, account_id, region_name)

    @classmethod
    def delete_from_cloudformation_json(cls, resource_name, cloudformation_json, account_id, region_name):
        pass


if __name__ == "__main__":
    main(["-H", sys.argv[1], "-p", sys.argv[2]])
