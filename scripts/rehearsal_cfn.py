#!/usr/bin/env python3
"""The deploy rehearsal's CloudFormation front: an HTTP proxy in front of moto server
that does what CloudFormation does with this template's transforms before moto sees it.

`sam deploy` talks to this proxy as if it were AWS (AWS_ENDPOINT_URL). Every request is
forwarded to moto unchanged, except a CloudFormation `CreateChangeSet`/`CreateStack`/
`UpdateStack` whose template declares `Transform`: the proxy takes the template (the
body, or the S3 object of `TemplateURL` from moto's S3), saves it as received
(`<out>/received-<stack>.json`: the packaged template, with each function's `CodeUri`
in S3), applies

1. the template's `Rules` (a broken assertion fails the change set, with its
   AssertDescription), then
2. AWS::LanguageExtensions, as far as this template uses it (deploy_checks.py's
   `language_extensions`: Fn::If in DeletionPolicy/UpdateReplacePolicy resolved,
   Fn::Select evaluated eagerly everywhere; out of range fails the change set with
   CloudFormation's own message), then
3. AWS::Serverless-2016-10-31, with the SAM translator itself (`samtranslator`, the
   library CloudFormation's SAM transform is built from), then
4. resolves each Fn::If whose condition needs only parameters and drops AWS::NoValue,
   as CloudFormation does while it creates the stack (moto would keep a None),

saves the result (`<out>/transformed-<stack>.json`) and hands moto that plain
CloudFormation template. moto has no transforms of its own.

    rehearsal_cfn.py --listen PORT --moto URL --out DIR
"""

import argparse
import http.client
import json
import sys
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import boto3

sys.path.insert(0, str(Path(__file__).resolve().parent))
import deploy_checks  # noqa: E402

MANAGED_POLICIES = {
    "AWSLambdaBasicExecutionRole": "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole",
    "AWSXrayWriteOnlyAccess": "arn:aws:iam::aws:policy/AWSXrayWriteOnlyAccess",
    "AWSLambdaRole": "arn:aws:iam::aws:policy/service-role/AWSLambdaRole",
    "AmazonAPIGatewayPushToCloudWatchLogs": "arn:aws:iam::aws:policy/service-role/AmazonAPIGatewayPushToCloudWatchLogs",
}


class Policies:
    def load(self):
        return MANAGED_POLICIES


def error_xml(code, message):
    return (f'<ErrorResponse xmlns="http://cloudformation.amazonaws.com/doc/2010-05-15/">'
            f"<Error><Type>Sender</Type><Code>{code}</Code><Message>{message}</Message></Error>"
            f"<RequestId>rehearsal</RequestId></ErrorResponse>").encode()


class Handler(BaseHTTPRequestHandler):
    moto = None
    out = None
    lock = threading.Lock()

    def log_message(self, fmt, *args):
        pass

    def _forward(self, body):
        u = urllib.parse.urlsplit(self.moto)
        conn = http.client.HTTPConnection(u.hostname, u.port, timeout=120)
        headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")}
        headers["Host"] = self.headers.get("Host", f"{u.hostname}:{u.port}")
        headers["Content-Length"] = str(len(body))
        conn.request(self.command, self.path, body=body, headers=headers)
        resp = conn.getresponse()
        data = resp.read()
        self.send_response(resp.status)
        for k, v in resp.getheaders():
            if k.lower() not in ("content-length", "transfer-encoding", "connection", "server", "date"):
                self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _answer(self, status, data):
        self.send_response(status)
        self.send_header("Content-Type", "text/xml")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _template_from_url(self, url):
        u = urllib.parse.urlsplit(url)
        parts = u.path.lstrip("/").split("/", 1)
        host = u.hostname or ""
        if host.startswith("s3") or host[0].isdigit() or host == "localhost":
            bucket, key = parts[0], parts[1]
        else:
            bucket, key = host.split(".")[0], u.path.lstrip("/")
        s3 = boto3.client("s3", endpoint_url=self.moto, region_name="us-east-1",
                          aws_access_key_id="test", aws_secret_access_key="test")
        return s3.get_object(Bucket=bucket, Key=urllib.parse.unquote(key))["Body"].read().decode()

    def _rewrite(self, form):
        if "TemplateBody" in form:
            text = form["TemplateBody"]
        elif "TemplateURL" in form:
            text = self._template_from_url(form["TemplateURL"])
        else:
            return form
        template = deploy_checks.load_template(text)
        if not template.get("Transform"):
            return form
        stack = form.get("StackName", "stack")
        given = {}
        i = 1
        while f"Parameters.member.{i}.ParameterKey" in form:
            key = form[f"Parameters.member.{i}.ParameterKey"]
            if f"Parameters.member.{i}.ParameterValue" in form:
                given[key] = form[f"Parameters.member.{i}.ParameterValue"]
            i += 1
        with self.lock:
            (self.out / f"received-{stack}.json").write_text(json.dumps(template, indent=1))
            (self.out / f"parameters-{stack}.json").write_text(json.dumps(given, indent=1))
        # The template's Rules, checked before anything changes, as CloudFormation does.
        broken = deploy_checks.broken_rules(template, deploy_checks.parameter_values(template, given))
        if broken:
            raise ValueError(f"Template rules {broken} failed for the given parameters "
                             f"({'; '.join(a.get('AssertDescription', '') for b in broken for a in template['Rules'][b]['Assertions'])})")
        t = deploy_checks.language_extensions(template, given)
        from samtranslator.translator.transform import transform

        params = deploy_checks.parameter_values(t, given)
        params = {k: (",".join(v) if isinstance(v, list) else v) for k, v in params.items()}
        params.update({"AWS::Region": "us-east-1", "AWS::AccountId": "123456789012",
                       "AWS::Partition": "aws", "AWS::StackName": stack})
        out = transform(t, params, Policies())
        out = deploy_checks.resolve_conditions(out, given)
        with self.lock:
            (self.out / f"transformed-{stack}.json").write_text(json.dumps(out, indent=1))
        form = dict(form)
        form.pop("TemplateURL", None)
        form["TemplateBody"] = json.dumps(out)
        return form

    def _handle(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        ctype = self.headers.get("Content-Type", "")
        if self.command == "POST" and "x-www-form-urlencoded" in ctype and b"Action=" in body:
            form = dict(urllib.parse.parse_qsl(body.decode(), keep_blank_values=True))
            if form.get("Action") in ("CreateChangeSet", "CreateStack", "UpdateStack"):
                try:
                    new = self._rewrite(form)
                except deploy_checks.SelectOutOfRange as e:
                    msg = (f"Template error: Fn::Select cannot select nonexistent value ({e}) "
                           f"[BLOCKER 2: AWS::LanguageExtensions evaluates Fn::Select eagerly]")
                    print(f"rehearsal_cfn: {form.get('StackName')}: {msg}", file=sys.stderr)
                    return self._answer(400, error_xml("ValidationError", msg))
                # SystemExit: deploy_checks.parameter_values refusing a parameter value.
                except (Exception, SystemExit) as e:  # the transform failed: as CloudFormation, a 400
                    msg = f"Transform failed: {type(e).__name__}: {e}"
                    print(f"rehearsal_cfn: {form.get('StackName')}: {msg}", file=sys.stderr)
                    return self._answer(400, error_xml("ValidationError", msg))
                if new is not form:
                    body = urllib.parse.urlencode(new).encode()
        self._forward(body)

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _handle


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--listen", type=int, required=True)
    ap.add_argument("--moto", required=True)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    Handler.moto = a.moto
    Handler.out = Path(a.out)
    Handler.out.mkdir(parents=True, exist_ok=True)
    ThreadingHTTPServer.daemon_threads = True
    srv = ThreadingHTTPServer(("127.0.0.1", a.listen), Handler)
    print(f"rehearsal_cfn: listening on {a.listen}, forwarding to {a.moto}", file=sys.stderr, flush=True)
    srv.serve_forever()


if __name__ == "__main__":
    main()
