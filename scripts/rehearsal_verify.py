#!/usr/bin/env python3
"""The deploy rehearsal's checks and tools (scripts/deploy-rehearsal.sh runs them).

    rehearsal_verify.py standin PATH
        Writes the stand-in `bootstrap`: a 132-byte hand-written ELF64 executable for
        aarch64 (Linux; `exit(0)`), used instead of the ~30 CPU-minute arm64 release
        build in the default mode.
    rehearsal_verify.py deploy-log LOG
        The `sam deploy --debug` log names .aws-sam/build/template.yaml as the
        template it deployed (BLOCKER 1).
    rehearsal_verify.py artifacts OUT STACK MOTO_URL
        Every function of the template `sam deploy` sent has its code in S3 (moto) as a
        zip with an executable `bootstrap` at its root, an ELF64 for aarch64 (the
        template's arm64), within Lambda's limits (50 MB zipped, 250 MB unzipped).
    rehearsal_verify.py stack OUT STACK MOTO_URL MOTO_PYTHON
        The stack reached CREATE_COMPLETE/UPDATE_COMPLETE in moto; every resource type
        of the transformed template is listed as created (and checked through the
        service's own API where the rehearsal knows how) or stubbed (moto has no
        CloudFormation model for it: it accepts the resource and creates nothing).
"""

import io
import json
import re
import struct
import subprocess
import sys
import zipfile
from collections import defaultdict
from pathlib import Path

EM_AARCH64 = 183
ZIP_LIMIT = 50 * 1024 * 1024
UNZIPPED_LIMIT = 250 * 1024 * 1024


def standin(path):
    # mov x0, #0 ; mov x8, #93 (exit) ; svc #0
    code = struct.pack("<III", 0xD2800000, 0xD2800BA8, 0xD4000001)
    base, header = 0x400000, 64 + 56
    size = header + len(code)
    ehdr = b"\x7fELF" + bytes([2, 1, 1, 0]) + bytes(8)
    ehdr += struct.pack("<HHIQQQIHHHHHH", 2, EM_AARCH64, 1, base + header, 64, 0, 0, 64, 56, 1, 64, 0, 0)
    phdr = struct.pack("<IIQQQQQQ", 1, 5, 0, base, base, size, size, 0x1000)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_bytes(ehdr + phdr + code)
    Path(path).chmod(0o755)


def elf_machine(data):
    if data[:4] != b"\x7fELF":
        return None, "not an ELF file"
    if data[4] != 2:
        return None, "not ELF64"
    return struct.unpack_from("<H", data, 18)[0], None


def deploy_log(log):
    text = Path(log).read_text(errors="replace")
    m = re.findall(r"Using SAM Template at (\S+)", text) or re.findall(r"[Tt]emplate[^\n]*?(\S*template\.yaml)", text)
    used = [x for x in m]
    if not used:
        sys.exit(f"BLOCKER 1?: cannot tell from {log} which template sam deploy used")
    bad = [u for u in used if ".aws-sam/build/template.yaml" not in u]
    if bad:
        sys.exit(f"BLOCKER 1: sam deploy reads the source template: it used {bad[0]}, not .aws-sam/build/template.yaml")
    print(f"  sam deploy used {used[0]}")


def s3_client(moto):
    import boto3
    return boto3.client("s3", endpoint_url=moto, region_name="us-east-1",
                        aws_access_key_id="test", aws_secret_access_key="test")


def artifacts(out, stack, moto):
    template = json.loads((Path(out) / f"received-{stack}.json").read_text())
    s3 = s3_client(moto)
    failures, rows = [], []
    for name, r in sorted(template["Resources"].items()):
        if r.get("Type") != "AWS::Serverless::Function":
            continue
        props = r.get("Properties", {})
        arch = (props.get("Architectures") or template.get("Globals", {}).get("Function", {}).get("Architectures") or ["x86_64"])[0]
        uri = props.get("CodeUri") or template.get("Globals", {}).get("Function", {}).get("CodeUri")
        if not (isinstance(uri, str) and uri.startswith("s3://")):
            failures.append(f"{name}: CodeUri {uri!r} is not an S3 object (not packaged by sam deploy)")
            continue
        bucket, key = uri[5:].split("/", 1)
        data = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        try:
            z = zipfile.ZipFile(io.BytesIO(data))
        except zipfile.BadZipFile:
            failures.append(f"{name}: {uri} is not a zip")
            continue
        names = z.namelist()
        unzipped = sum(i.file_size for i in z.infolist())
        if "bootstrap" not in names:
            failures.append(f"{name}: no bootstrap at the zip's root (entries: {names[:5]}{' ...' if len(names) > 5 else ''}, {len(names)} in all)")
            continue
        info = z.getinfo("bootstrap")
        mode = info.external_attr >> 16
        if not mode & 0o111:
            failures.append(f"{name}: bootstrap is not executable (mode {oct(mode)})")
        machine, err = elf_machine(z.read("bootstrap"))
        want = EM_AARCH64 if arch == "arm64" else 62
        if err or machine != want:
            failures.append(f"{name}: bootstrap is {err or f'an ELF for machine {machine}'}, the template says {arch} (ELF machine {want})")
        if len(data) > ZIP_LIMIT or unzipped > UNZIPPED_LIMIT:
            failures.append(f"{name}: {len(data)} bytes zipped / {unzipped} unzipped: over Lambda's 50 MB / 250 MB")
        rows.append((name, len(data), unzipped, arch))
    for name, zipped, unzipped, arch in rows:
        print(f"  {name:<24} zip {zipped:>10,} B  unzipped {unzipped:>12,} B  bootstrap: executable ELF64 {arch}")
    if failures:
        for f in failures:
            print("ARTIFACT: " + f, file=sys.stderr)
        sys.exit(1)
    if not rows:
        sys.exit("ARTIFACT: no function in the deployed template")


def supported_types(moto_python):
    code = ("import json; from moto.cloudformation.parsing import get_model_map, NULL_MODELS;"
            "print(json.dumps({'models': sorted(get_model_map()), 'null': sorted(NULL_MODELS)}))")
    return json.loads(subprocess.check_output([moto_python, "-c", code]))


def stack(out, stack_name, moto, moto_python):
    import boto3
    kw = dict(endpoint_url=moto, region_name="us-east-1", aws_access_key_id="test", aws_secret_access_key="test")
    cfn = boto3.client("cloudformation", **kw)
    st = cfn.describe_stacks(StackName=stack_name)["Stacks"][0]
    if st["StackStatus"] not in ("CREATE_COMPLETE", "UPDATE_COMPLETE"):
        sys.exit(f"STACK: {stack_name} is {st['StackStatus']}: {st.get('StackStatusReason')}")
    template = json.loads((Path(out) / f"transformed-{stack_name}.json").read_text())
    wanted = template["Resources"]
    cond_false = set()
    # Resources whose Condition is false are not created, in AWS neither.
    params = json.loads((Path(out) / f"parameters-{stack_name}.json").read_text())
    import deploy_checks
    src = json.loads((Path(out) / f"received-{stack_name}.json").read_text())
    pv = deploy_checks.parameter_values(src, params)
    for k, r in wanted.items():
        if "Condition" in r and not deploy_checks.condition(template, r["Condition"], pv):
            cond_false.add(k)
    listed = {}
    for page in cfn.get_paginator("list_stack_resources").paginate(StackName=stack_name):
        for s in page["StackResourceSummaries"]:
            listed[s["LogicalResourceId"]] = s
    types = supported_types(moto_python)
    # scripts/rehearsal_moto.py adds the Lambda alias model to moto's CloudFormation.
    types["models"].append("AWS::Lambda::Alias")
    by_type = defaultdict(lambda: {"created": [], "stubbed": [], "missing": [], "off": []})
    for k, r in wanted.items():
        t = r["Type"]
        if k in cond_false:
            by_type[t]["off"].append(k)
        elif t in types["models"] and t not in types["null"]:
            (by_type[t]["created"] if k in listed else by_type[t]["missing"]).append(k)
        else:
            by_type[t]["stubbed"].append(k)
    failures = []
    # Through the services' own APIs: what moto created is really there.
    ddb = boto3.client("dynamodb", **kw)
    lam = boto3.client("lambda", **kw)
    sns = boto3.client("sns", **kw)
    sqs = boto3.client("sqs", **kw)
    iam = boto3.client("iam", **kw)
    checks = {
        "AWS::DynamoDB::Table": lambda p: ddb.describe_table(TableName=p)["Table"]["TableStatus"],
        "AWS::Lambda::Function": lambda p: (lambda c: f"{c['Runtime']} {c['Architectures'][0]} {c['CodeSize']} B")(lam.get_function(FunctionName=p)["Configuration"]),
        "AWS::SNS::Topic": lambda p: sns.get_topic_attributes(TopicArn=p)["Attributes"]["TopicArn"].split(":")[-1],
        "AWS::SQS::Queue": lambda p: sqs.get_queue_attributes(QueueUrl=p, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"].split(":")[-1],
        "AWS::IAM::Role": lambda p: iam.get_role(RoleName=p)["Role"]["RoleName"],
        # arn:...:function:NAME:live, pointing at a published version (not $LATEST).
        "AWS::Lambda::Alias": lambda p: (lambda a: a["FunctionVersion"] != "$LATEST" or 1 / 0)(
            lam.get_alias(FunctionName=p.split(":")[6], Name=p.split(":")[7])),
    }
    verified = defaultdict(int)
    for t, groups in by_type.items():
        if t in checks:
            for k in groups["created"]:
                try:
                    checks[t](listed[k]["PhysicalResourceId"])
                    verified[t] += 1
                except Exception as e:
                    failures.append(f"{t} {k} ({listed[k]['PhysicalResourceId']}): listed by the stack but not found: {e}")
        for k in groups["missing"]:
            failures.append(f"{t} {k}: moto supports the type but the stack has no such resource")
    # Runtime and architecture as the template after both transforms asks for them
    # (moto's CloudFormation model of AWS::Lambda::Function drops Architectures: it
    # creates x86_64 functions whatever the template says, so moto's answer is shown,
    # not asserted).
    moto_arch = set()
    for k, r in wanted.items():
        if r["Type"] != "AWS::Lambda::Function":
            continue
        p = r.get("Properties", {})
        if p.get("Architectures") != ["arm64"] or p.get("Runtime") != "provided.al2023" or p.get("Handler") != "bootstrap":
            failures.append(f"Lambda {k}: {p.get('Runtime')} {p.get('Architectures')} handler {p.get('Handler')}, expected provided.al2023 [arm64] bootstrap")
        if k in listed:
            c = lam.get_function(FunctionName=listed[k]["PhysicalResourceId"])["Configuration"]
            moto_arch.add(f"{c.get('Runtime')} {','.join(c.get('Architectures') or [])}")
    # Gradual releases: every invoke permission (API routes, WebSocket integrations, SNS
    # subscriptions) names a function's `live` alias, which CodeDeploy shifts, never the
    # unqualified function (that traffic would skip the canary).
    aliases = {k for k, r in wanted.items() if r["Type"] == "AWS::Lambda::Alias"}
    functions = [k for k, r in wanted.items() if r["Type"] == "AWS::Lambda::Function"]
    if len(aliases) != len(functions):
        failures.append(f"{len(functions)} functions but {len(aliases)} aliases (AutoPublishAlias on every function)")
    for k, r in wanted.items():
        if r["Type"] == "AWS::Lambda::Permission":
            target = r.get("Properties", {}).get("FunctionName")
            if not (isinstance(target, dict) and target.get("Ref") in aliases):
                failures.append(f"Permission {k}: FunctionName {target}, expected !Ref of a function's live alias")
        if r["Type"] == "AWS::SNS::Subscription" and r.get("Properties", {}).get("Protocol") == "lambda":
            target = r["Properties"].get("Endpoint")
            if not (isinstance(target, dict) and target.get("Ref") in aliases):
                failures.append(f"Subscription {k}: Endpoint {target}, expected !Ref of a function's live alias")
    print(f"  gradual releases: {len(aliases)} live aliases; every invoke permission and lambda subscription targets one")
    # Environment=prod: tables kept (Retain) and deletion-protected; dev: neither.
    prod = pv.get("Environment") == "prod"
    for k, r in wanted.items():
        if r["Type"] != "AWS::DynamoDB::Table":
            continue
        want = "Retain" if prod else "Delete"
        if r.get("DeletionPolicy") != want or r.get("UpdateReplacePolicy") != want:
            failures.append(f"Table {k}: DeletionPolicy {r.get('DeletionPolicy')} / UpdateReplacePolicy {r.get('UpdateReplacePolicy')}, expected {want} for Environment={pv.get('Environment')}")
        if k in listed:
            got = ddb.describe_table(TableName=listed[k]["PhysicalResourceId"])["Table"].get("DeletionProtectionEnabled")
            if bool(got) != prod:
                failures.append(f"Table {k}: DeletionProtectionEnabled {got} in moto, expected {prod}")
    print(f"  tables: DeletionPolicy/UpdateReplacePolicy {'Retain' if prod else 'Delete'}, deletion protection {'on' if prod else 'off'}")
    print(f"  stack {stack_name}: {st['StackStatus']}, {len(wanted)} resources after both transforms")
    print(f"  {'resource type':<40}{'created':>8}{'checked':>8}{'stubbed':>8}{'off':>5}")
    for t in sorted(by_type):
        g = by_type[t]
        print(f"  {t:<40}{len(g['created']):>8}{verified.get(t, 0) if t in checks else '-':>8}{len(g['stubbed']):>8}{len(g['off']):>5}")
    stubbed = sorted(t for t, g in by_type.items() if g["stubbed"])
    print(f"  STUBBED by moto (accepted, nothing created, nothing checked): {', '.join(stubbed) or 'none'}")
    print("  off: resources whose Condition is false for these parameters (not created in AWS either)")
    print(f"  functions: provided.al2023 arm64 handler bootstrap in the template; moto created them as {', '.join(sorted(moto_arch))} (moto ignores Architectures)")
    if failures:
        for f in failures:
            print("STACK: " + f, file=sys.stderr)
        sys.exit(1)


def main(argv):
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    cmd, args = argv[0], argv[1:]
    if cmd == "standin":
        standin(*args)
    elif cmd == "deploy-log":
        deploy_log(*args)
    elif cmd == "artifacts":
        artifacts(*args)
    elif cmd == "stack":
        stack(*args)
    else:
        sys.exit(f"unknown command {cmd}")


if __name__ == "__main__":
    main(sys.argv[1:])
