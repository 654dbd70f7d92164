#!/usr/bin/env python3
"""Deploy checks of infra/template.yaml and samconfig.toml, offline, in a second or two.

Each check names what it guards against, so that a blocker reintroduced by hand turns
CI red with its name:

- BLOCKER 1: `sam deploy` must read the built template. `template_file` in a `global`
  or `deploy` section of samconfig.toml makes `sam deploy` deploy (and zip) the source
  template instead of `.aws-sam/build/template.yaml`.
- BLOCKER 2: no `Fn::Select` out of range for any allowed parameter value. The
  `AWS::LanguageExtensions` transform evaluates `Fn::Select` eagerly, also under the
  false branch of `Fn::If`, and fails the change set. Checked for every parameter
  combination of samconfig.toml (dev, prod) crossed with empty and set push ARNs,
  both values of ConfigureApiGatewayLogsRole and the custom-domain variants (none,
  domain + certificate, and with a hosted zone).
- RULES / CUSTOM DOMAIN: each of those combinations passes the template's `Rules`, and
  a domain name without a certificate does not.
- BLOCKER 3: the WebSocket stage (access logging) must be created after the account's
  API Gateway CloudWatch role is set (ApiGatewayAccount), through a reference (a
  `DependsOn` on a conditional resource is invalid); and no resource may `DependsOn`
  a conditional resource at all.
- STALE WEBSOCKET DEPLOYMENT: the `AWS::ApiGatewayV2::Deployment` logical id carries a
  hash of the WebSocket routes and integrations (`WebSocketDeployment<hash>`), so that
  CloudFormation creates a new deployment whenever they change; `--fix-ws-deployment`
  rewrites the id. The deployment must also depend on every route.
- CORS: the HTTP API exposes `Retry-After` to browsers.
- RECURSIVE LOOP: a function that publishes to a topic that triggers it sets
  `RecursiveLoop: Allow` (Lambda stops such chains after ~16 hops otherwise).
- KEY ROTATION: a secret resolved into a function's environment is pinned to a version
  stage from a parameter, so that a rotation deployed with a new stage label reaches
  every function (an unchanged dynamic reference is never resolved again).
- SECRET IN CONFIGURATION (a warning for now): the resolved secret is readable in the
  function's configuration; reading it at init by ARN would keep it out.

It also carries the template tooling the deploy rehearsal's CloudFormation stand-in
uses (scripts/rehearsal_cfn.py): a loader for the short-form intrinsic tags and
`language_extensions()`, the LanguageExtensions semantics this template relies on.

    python3 scripts/deploy_checks.py                      # all checks
    python3 scripts/deploy_checks.py --fix-ws-deployment  # rewrite the stale id, then check

Needs PyYAML (the aws-sam-cli virtualenv has it; scripts/deploy-rehearsal.sh runs this
with .local/venv-sam/bin/python).
"""

import copy
import hashlib
import itertools
import json
import re
import sys
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "infra" / "template.yaml"
SAMCONFIG = ROOT / "samconfig.toml"

# ----------------------------------------------------------------- YAML with CFN tags


class CfnLoader(yaml.SafeLoader):
    pass


def _tag(name):
    fn = "Ref" if name == "Ref" else ("Condition" if name == "Condition" else "Fn::" + name)

    def construct(loader, node):
        if isinstance(node, yaml.ScalarNode):
            value = loader.construct_scalar(node)
            if name == "GetAtt":
                value = value.split(".", 1)
        elif isinstance(node, yaml.SequenceNode):
            value = loader.construct_sequence(node, deep=True)
        else:
            value = loader.construct_mapping(node, deep=True)
        return {fn: value}

    return construct


for _n in ["Ref", "Condition", "GetAtt", "Sub", "Join", "Split", "Select", "If", "Not",
           "Equals", "And", "Or", "FindInMap", "Base64", "Cidr", "ImportValue",
           "GetAZs", "Length", "ToJsonString"]:
    CfnLoader.add_constructor("!" + _n, _tag(_n))


def load_template(text=None):
    return yaml.load(text if text is not None else TEMPLATE.read_text(), Loader=CfnLoader)


# ----------------------------------------------------------------- parameters


def samconfig():
    return tomllib.loads(SAMCONFIG.read_text())


def overrides(env, cfg=None):
    """parameter_overrides of a samconfig environment as a dict."""
    cfg = cfg or samconfig()
    raw = cfg.get(env, {}).get("deploy", {}).get("parameters", {}).get("parameter_overrides", [])
    if isinstance(raw, str):
        raw = re.findall(r'(\S+?=(?:"[^"]*"|\S*))', raw)
    out = {}
    for item in raw:
        k, _, v = item.partition("=")
        out[k] = v.strip('"')
    return out


def parameter_values(template, given):
    """Every parameter's value (given, else its default), CommaDelimitedList as a list."""
    values = {}
    for name, p in template.get("Parameters", {}).items():
        v = given.get(name, p.get("Default"))
        if v is None:
            raise SystemExit(f"parameter {name} has no value and no default")
        v = str(v)
        allowed = p.get("AllowedValues")
        if allowed is not None and v not in [str(a) for a in allowed]:
            raise SystemExit(f"parameter {name}={v!r} is not one of {allowed}")
        pattern = p.get("AllowedPattern")
        if pattern is not None and not re.fullmatch(pattern, v):
            raise SystemExit(f"parameter {name}={v!r} does not match {pattern}")
        values[name] = [x.strip() for x in v.split(",")] if p.get("Type") == "CommaDelimitedList" else v
    return values


PSEUDO = {
    "AWS::Region": "us-east-1",
    "AWS::AccountId": "123456789012",
    "AWS::Partition": "aws",
    "AWS::StackName": "chat-check",
    "AWS::StackId": "arn:aws:cloudformation:us-east-1:123456789012:stack/chat-check/1",
    "AWS::URLSuffix": "amazonaws.com",
}

SAMPLE_PUSH_ARNS = {
    "ApnsPlatformApplicationArn": "arn:aws:sns:us-east-1:123456789012:app/APNS/chat-apns",
    "FcmPlatformApplicationArn": "arn:aws:sns:us-east-1:123456789012:app/GCM/chat-fcm",
}


SAMPLE_DOMAIN = {
    "DomainName": "chat.example.com",
    "DomainCertificateArn": "arn:aws:acm:us-east-1:123456789012:certificate/0b0e6d5e-6b7b-4c4a-9d0e-1f2a3b4c5d6e",
    "DomainHostedZoneId": "Z0123456789ABCDEFGHIJ",
}

# The custom-domain parameters: none, domain and certificate, and with the hosted zone.
DOMAIN_VARIANTS = [
    ("no custom domain", {}),
    ("custom domain", {k: SAMPLE_DOMAIN[k] for k in ("DomainName", "DomainCertificateArn")}),
    ("custom domain + hosted zone", dict(SAMPLE_DOMAIN)),
]


def combinations(cfg=None):
    """(label, overrides) for every samconfig environment crossed with empty/set push
    ARNs, both ConfigureApiGatewayLogsRole values and the custom-domain variants."""
    cfg = cfg or samconfig()
    out = []
    for env in [e for e in cfg if isinstance(cfg[e], dict) and "deploy" in cfg[e]]:
        base = overrides(env, cfg)
        for apns, fcm, role, (dlabel, domain) in itertools.product(
                [False, True], [False, True], ["true", "false"], DOMAIN_VARIANTS):
            o = dict(base)
            o["ApnsPlatformApplicationArn"] = SAMPLE_PUSH_ARNS["ApnsPlatformApplicationArn"] if apns else ""
            o["FcmPlatformApplicationArn"] = SAMPLE_PUSH_ARNS["FcmPlatformApplicationArn"] if fcm else ""
            o["ConfigureApiGatewayLogsRole"] = role
            o.update(domain)
            label = f"{env} (APNs {'set' if apns else 'empty'}, FCM {'set' if fcm else 'empty'}, ConfigureApiGatewayLogsRole={role}, {dlabel})"
            out.append((label, o))
    return out


# ----------------------------------------------------------------- evaluation


class Unresolved(Exception):
    """The value depends on a resource (known only while the stack is created)."""


class SelectOutOfRange(Exception):
    pass


def intrinsic(node):
    if isinstance(node, dict) and len(node) == 1:
        k = next(iter(node))
        if k == "Ref" or k == "Condition" or k.startswith("Fn::"):
            return k, node[k]
    return None, None


def condition(template, name, params):
    return truthy(template, template["Conditions"][name], params)


def truthy(template, node, params):
    fn, arg = intrinsic(node)
    if fn == "Fn::Equals":
        a, b = (evaluate(template, x, params) for x in arg)
        return str(a) == str(b)
    if fn == "Fn::Not":
        return not truthy(template, arg[0], params)
    if fn == "Fn::And":
        return all(truthy(template, x, params) for x in arg)
    if fn == "Fn::Or":
        return any(truthy(template, x, params) for x in arg)
    if fn == "Condition":
        return condition(template, arg, params)
    raise Unresolved(f"condition {node!r}")


def evaluate(template, node, params):
    """The value of `node` with parameters and pseudo parameters known, as the
    LanguageExtensions transform computes it; Unresolved where a resource is needed."""
    fn, arg = intrinsic(node)
    if fn is None:
        if isinstance(node, list):
            return [evaluate(template, x, params) for x in node]
        if isinstance(node, dict):
            return {k: evaluate(template, v, params) for k, v in node.items()}
        return node
    if fn == "Ref":
        if arg in params:
            return params[arg]
        if arg in PSEUDO:
            return PSEUDO[arg]
        raise Unresolved(f"Ref {arg}")
    if fn == "Fn::Sub":
        text, extra = (arg, {}) if isinstance(arg, str) else (arg[0], arg[1])

        def sub(m):
            name = m.group(1)
            if name.startswith("!"):
                return "${" + name[1:] + "}"
            if name in extra:
                return str(evaluate(template, extra[name], params))
            if name in params:
                v = params[name]
                return ",".join(v) if isinstance(v, list) else str(v)
            if name in PSEUDO:
                return PSEUDO[name]
            raise Unresolved(f"Sub ${{{name}}}")

        return re.sub(r"\$\{([^}]+)\}", sub, text)
    if fn == "Fn::Split":
        return str(evaluate(template, arg[1], params)).split(arg[0])
    if fn == "Fn::Join":
        return arg[0].join(str(x) for x in evaluate(template, arg[1], params))
    if fn == "Fn::Select":
        index = int(evaluate(template, arg[0], params))
        items = arg[1]
        if not (isinstance(items, list)):
            items = evaluate(template, items, params)
        if not 0 <= index < len(items):
            raise SelectOutOfRange(f"Fn::Select index {index} of a list of {len(items)}: {items!r}")
        return evaluate(template, items[index], params)
    if fn == "Fn::If":
        branch = arg[1] if condition(template, arg[0], params) else arg[2]
        return evaluate(template, branch, params)
    if fn == "Fn::Length":
        return len(evaluate(template, arg, params))
    raise Unresolved(fn)


def eager_selects(template, params):
    """Every Fn::Select anywhere in the template (both branches of every Fn::If), as
    LanguageExtensions evaluates them: [(path, error)] for those out of range."""
    errors = []

    def walk(node, path):
        fn, arg = intrinsic(node)
        if fn == "Fn::Select":
            try:
                evaluate(template, node, params)
            except SelectOutOfRange as e:
                errors.append((path, str(e)))
            except Unresolved:
                pass
        if isinstance(node, dict):
            for k, v in node.items():
                walk(v, f"{path}.{k}")
        elif isinstance(node, list):
            for i, v in enumerate(node):
                walk(v, f"{path}[{i}]")

    walk(template.get("Resources", {}), "Resources")
    walk(template.get("Outputs", {}), "Outputs")
    return errors


def language_extensions(template, given):
    """What the AWS::LanguageExtensions transform hands on to the SAM transform, for
    this template: Fn::If in DeletionPolicy/UpdateReplacePolicy resolved, every
    Fn::Select resolved where parameters suffice (eagerly: raises SelectOutOfRange, as
    CloudFormation fails the change set), and the transform removed from the list."""
    t = copy.deepcopy(template)
    params = parameter_values(t, given)
    errors = eager_selects(t, params)
    if errors:
        raise SelectOutOfRange("; ".join(f"{p}: {e}" for p, e in errors))
    for r in t.get("Resources", {}).values():
        for attr in ("DeletionPolicy", "UpdateReplacePolicy"):
            if attr in r and not isinstance(r[attr], str):
                r[attr] = evaluate(t, r[attr], params)

    def resolve(node):
        fn, _ = intrinsic(node)
        if fn == "Fn::Select":
            try:
                return evaluate(t, node, params)
            except Unresolved:
                pass
        if isinstance(node, dict):
            return {k: resolve(v) for k, v in node.items()}
        if isinstance(node, list):
            return [resolve(v) for v in node]
        return node

    t["Resources"] = resolve(t["Resources"])
    transforms = t.get("Transform")
    if isinstance(transforms, list):
        rest = [x for x in transforms if x != "AWS::LanguageExtensions"]
        t["Transform"] = rest[0] if len(rest) == 1 else rest
    return t


NO_VALUE = object()


def resolve_conditions(template, given):
    """Fn::If resolved and AWS::NoValue dropped (from lists and mappings) wherever the
    condition depends only on parameters, as CloudFormation does when it creates the
    stack. The rehearsal applies it before handing the template to moto, whose
    CloudFormation leaves a None in a list where the NoValue was."""
    t = copy.deepcopy(template)
    params = parameter_values(t, given)

    def walk(node):
        fn, arg = intrinsic(node)
        if fn == "Fn::If":
            try:
                chosen = arg[1] if condition(t, arg[0], params) else arg[2]
                return walk(chosen)
            except Unresolved:
                pass
        if fn == "Ref" and arg == "AWS::NoValue":
            return NO_VALUE
        if isinstance(node, dict):
            out = {}
            for k, v in node.items():
                w = walk(v)
                if w is not NO_VALUE:
                    out[k] = w
            return out
        if isinstance(node, list):
            return [w for w in (walk(v) for v in node) if w is not NO_VALUE]
        return node

    t["Resources"] = walk(t["Resources"])
    if "Outputs" in t:
        t["Outputs"] = walk(t["Outputs"])
    return t


# ----------------------------------------------------------------- references


def references(node):
    """Logical ids a node refers to (Ref, GetAtt, ${X} / ${X.Attr} in Sub)."""
    out = set()
    fn, arg = intrinsic(node)
    if fn == "Ref" and isinstance(arg, str):
        out.add(arg)
    elif fn == "Fn::GetAtt":
        out.add(arg[0] if isinstance(arg, list) else arg.split(".")[0])
    elif fn == "Fn::Sub":
        text = arg if isinstance(arg, str) else arg[0]
        for m in re.findall(r"\$\{([^}!][^}]*)\}", text):
            out.add(m.split(".")[0])
        if not isinstance(arg, str):
            out |= references(arg[1])
    if isinstance(node, dict):
        for v in node.values():
            out |= references(v)
    elif isinstance(node, list):
        for v in node:
            out |= references(v)
    return out


def depends(resource):
    d = resource.get("DependsOn", [])
    return {d} if isinstance(d, str) else set(d)


def ancestors(resources, start):
    seen, todo = set(), [start]
    while todo:
        r = resources.get(todo.pop(), {})
        for x in (references(r.get("Properties", {})) | depends(r)) & set(resources):
            if x not in seen:
                seen.add(x)
                todo.append(x)
    return seen


# ----------------------------------------------------------------- the checks


def check_samconfig(cfg):
    errors = []
    for env, sections in cfg.items():
        if not isinstance(sections, dict):
            continue
        for cmd in ("global", "deploy", "package"):
            params = sections.get(cmd, {}).get("parameters", {})
            if "template_file" in params:
                errors.append(
                    f"BLOCKER 1: sam deploy reads the source template: samconfig.toml "
                    f"[{env}.{cmd}.parameters] sets template_file, which `sam deploy "
                    f"--config-env {env}` also reads, so it deploys infra/template.yaml "
                    f"(and zips the repository as each function's code) instead of "
                    f".aws-sam/build/template.yaml. Set template_file in "
                    f"[{env}.build.parameters] only.")
    return errors


def check_selects(template, cfg):
    errors = []
    for label, given in combinations(cfg):
        params = parameter_values(template, given)
        for path, e in eager_selects(template, params):
            errors.append(
                f"BLOCKER 2: Fn::Select out of range with {label}, at {path}: {e}. "
                f"AWS::LanguageExtensions evaluates Fn::Select eagerly (also under a "
                f"false Fn::If) and fails the change set; split a string that always "
                f"contains the separator.")
    return errors


def broken_rules(template, params):
    """Names of the template's Rules whose assertions fail for these parameters, as
    CloudFormation evaluates them before it creates a change set."""
    broken = []
    for name, rule in template.get("Rules", {}).items():
        cond = rule.get("RuleCondition")
        if cond is not None and not truthy(template, cond, params):
            continue
        if not all(truthy(template, a["Assert"], params) for a in rule.get("Assertions", [])):
            broken.append(name)
    return broken


def check_rules(template, cfg):
    """CUSTOM DOMAIN: every combination the checks deploy passes the template's Rules
    (a broken rule fails the deploy before any change), and the half-set custom domain
    that cannot work (a domain name without a certificate) is refused by one."""
    errors = []
    for label, given in combinations(cfg):
        broken = broken_rules(template, parameter_values(template, given))
        if broken:
            errors.append(f"RULES: {label} breaks {broken}: CloudFormation would refuse the deploy")
    half = dict(overrides("dev", cfg), DomainName=SAMPLE_DOMAIN["DomainName"])
    if not broken_rules(template, parameter_values(template, half)):
        errors.append("CUSTOM DOMAIN: DomainName without DomainCertificateArn passes the template's "
                      "Rules; the stack would deploy without the domain (HasCustomDomain is false) "
                      "and say nothing.")
    return errors


def check_stage_waits_for_logs_role(template):
    resources = template["Resources"]
    errors = []
    conditional = {k for k, r in resources.items() if "Condition" in r}
    for k, r in resources.items():
        bad = depends(r) & conditional
        if bad and r.get("Condition") not in {resources[b].get("Condition") for b in bad}:
            errors.append(
                f"BLOCKER 3: {k} has DependsOn {sorted(bad)}, a conditional resource: "
                f"CloudFormation rejects the template when the condition is false. Use a "
                f"reference under Fn::If instead.")
    stages = [k for k, r in resources.items() if r.get("Type") == "AWS::ApiGatewayV2::Stage"
              and r.get("Properties", {}).get("AccessLogSettings")]
    accounts = [k for k, r in resources.items() if r.get("Type") == "AWS::ApiGateway::Account"]
    for s in stages:
        for a in accounts:
            if a not in ancestors(resources, s):
                errors.append(
                    f"BLOCKER 3: {s} (access logging) does not wait for {a}: on a fresh "
                    f"account the stage can be created before the account's CloudWatch "
                    f"role is set and fails with \"CloudWatch Logs role ARN must be set "
                    f"in account settings to enable logging\". Reference {a} from the "
                    f"stage (e.g. Description: !If [<condition>, !Sub \"...${{{a}}}\", "
                    f"!Ref AWS::NoValue]); DependsOn cannot name a conditional resource.")
    return errors


def ws_api_children(resources):
    apis = [k for k, r in resources.items() if r.get("Type") == "AWS::ApiGatewayV2::Api"
            and r.get("Properties", {}).get("ProtocolType") == "WEBSOCKET"]
    kinds = {"AWS::ApiGatewayV2::Route", "AWS::ApiGatewayV2::Integration",
             "AWS::ApiGatewayV2::RouteResponse", "AWS::ApiGatewayV2::IntegrationResponse"}
    out = {}
    for api in apis:
        out[api] = {k: r for k, r in resources.items() if r.get("Type") in kinds
                    and r.get("Properties", {}).get("ApiId") == {"Ref": api}}
    return out


def ws_deployment_hash(children):
    canonical = json.dumps({k: {"Type": r["Type"], "Properties": r.get("Properties", {})}
                            for k, r in sorted(children.items())}, sort_keys=True)
    return hashlib.sha256(canonical.encode()).hexdigest()[:10]


def check_ws_deployment(template, fix=False):
    """[(errors)], and with fix the template text rewritten (or None)."""
    resources = template["Resources"]
    errors = []
    text = TEMPLATE.read_text()
    new_text = None
    for api, children in ws_api_children(resources).items():
        deployments = [k for k, r in resources.items() if r.get("Type") == "AWS::ApiGatewayV2::Deployment"
                       and r.get("Properties", {}).get("ApiId") == {"Ref": api}]
        if len(deployments) != 1:
            errors.append(f"STALE WEBSOCKET DEPLOYMENT: {api} needs exactly one AWS::ApiGatewayV2::Deployment, found {deployments}")
            continue
        dep = deployments[0]
        want = "WebSocketDeployment" + ws_deployment_hash(children)
        routes = {k for k, r in children.items() if r["Type"] == "AWS::ApiGatewayV2::Route"}
        missing = routes - depends(resources[dep])
        if missing:
            errors.append(f"STALE WEBSOCKET DEPLOYMENT: {dep} must DependsOn every route of {api} (a deployment snapshots the routes that exist when it is created); missing: {sorted(missing)}")
        if dep != want:
            if fix:
                new_text = re.sub(r"\b" + re.escape(dep) + r"\b", want, new_text or text)
                print(f"deploy_checks: renamed {dep} -> {want} in infra/template.yaml", file=sys.stderr)
            else:
                errors.append(
                    f"STALE WEBSOCKET DEPLOYMENT: the WebSocket routes/integrations changed but "
                    f"the deployment's logical id is {dep}, expected {want} (a hash of them): "
                    f"CloudFormation would keep the old deployment and the stage would serve the "
                    f"old routes. Run `python3 scripts/deploy_checks.py --fix-ws-deployment`.")
    return errors, new_text


def check_cors(template):
    errors = []
    for k, r in template["Resources"].items():
        if r.get("Type") == "AWS::Serverless::HttpApi":
            cors = r.get("Properties", {}).get("CorsConfiguration") or {}
            exposed = [h.lower() for h in cors.get("ExposeHeaders", [])]
            if "retry-after" not in exposed:
                errors.append(f"CORS: {k} does not expose Retry-After (CorsConfiguration.ExposeHeaders): browsers cannot read when to retry a 429/503.")
    return errors


def check_recursive_loops(template):
    errors = []
    for k, r in template["Resources"].items():
        if r.get("Type") != "AWS::Serverless::Function":
            continue
        props = r.get("Properties", {})
        triggers = {ev["Properties"]["Topic"].get("Ref") for ev in (props.get("Events") or {}).values()
                    if ev.get("Type") == "SNS" and isinstance(ev["Properties"].get("Topic"), dict)}
        published = set()
        for pol in props.get("Policies", []) or []:
            for st in (pol.get("Statement", []) if isinstance(pol, dict) else []):
                actions = st.get("Action")
                actions = [actions] if isinstance(actions, str) else (actions or [])
                if "sns:Publish" in actions:
                    published |= references(st.get("Resource"))
        loop = triggers & published
        if loop and props.get("RecursiveLoop") != "Allow":
            errors.append(f"RECURSIVE LOOP: {k} publishes to {sorted(loop)}, which triggers it: Lambda stops the chain after ~16 hops unless the function sets RecursiveLoop: Allow.")
    return errors


def check_no_secret_in_configuration(template):
    errors = []
    for where, env in [("Globals", template.get("Globals", {}).get("Function", {}).get("Environment", {}))] + [
            (k, r.get("Properties", {}).get("Environment", {})) for k, r in template["Resources"].items()
            if r.get("Type") in ("AWS::Serverless::Function", "AWS::Lambda::Function")]:
        for name, value in (env or {}).get("Variables", {}).items():
            if "{{resolve:secretsmanager" in json.dumps(value):
                errors.append(f"SECRET IN CONFIGURATION: {where} Environment.{name} resolves a Secrets Manager secret into the function configuration (readable with lambda:GetFunctionConfiguration). Reading it at init by ARN would keep it out.")
    return errors


def check_key_rotation(template):
    """A secret resolved into configuration must be pinned to a parameter (its version
    stage), or a rotation never reaches the functions: CloudFormation resolves an
    unchanged dynamic reference only once."""
    errors = []
    envs = [("Globals", template.get("Globals", {}).get("Function", {}).get("Environment", {}))] + [
        (k, r.get("Properties", {}).get("Environment", {})) for k, r in template["Resources"].items()
        if r.get("Type") in ("AWS::Serverless::Function", "AWS::Lambda::Function")]
    params = set(template.get("Parameters", {}))
    for where, env in envs:
        for name, value in (env or {}).get("Variables", {}).items():
            text = json.dumps(value)
            for ref in re.findall(r"\{\{resolve:secretsmanager:([^}]*(?:\}[^}][^}]*)*)\}\}", text):
                segments = ref.split(":SecretString:", 1)[-1].split(":")
                pinned = len(segments) >= 2 and any(
                    m in params for m in re.findall(r"\$\{([^}]+)", ":".join(segments[1:])))
                if not pinned:
                    errors.append(
                        f"KEY ROTATION: {where} Environment.{name} resolves {{{{resolve:secretsmanager:{ref}}}}} "
                        f"without a version stage taken from a parameter: CloudFormation never resolves an "
                        f"unchanged reference again, so a rotated key would not reach the functions.")
    return errors


def main(argv):
    fix = "--fix-ws-deployment" in argv
    template = load_template()
    cfg = samconfig()
    errors = []
    errors += check_samconfig(cfg)
    errors += check_selects(template, cfg)
    errors += check_rules(template, cfg)
    errors += check_stage_waits_for_logs_role(template)
    ws_errors, new_text = check_ws_deployment(template, fix)
    if new_text is not None:
        TEMPLATE.write_text(new_text)
        template = load_template()
        ws_errors, _ = check_ws_deployment(template)
    errors += ws_errors
    errors += check_cors(template)
    errors += check_recursive_loops(template)
    errors += check_key_rotation(template)
    # Not failing: the functions receive the key through a pinned dynamic reference
    # (docs/deployment.md, "The JWT signing key"); the read at init is not built yet.
    for w in check_no_secret_in_configuration(template):
        print("WARNING (known, not failing): " + w, file=sys.stderr)
    for e in errors:
        print(e, file=sys.stderr)
    n = len(combinations(cfg))
    if errors:
        print(f"deploy_checks: FAILED ({len(errors)} finding(s))", file=sys.stderr)
        return 1
    print(f"deploy_checks: ok (samconfig, eager Fn::Select and Rules over {n} parameter combinations, stage/logs-role order, WebSocket deployment hash, CORS, recursive loops, key rotation)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
