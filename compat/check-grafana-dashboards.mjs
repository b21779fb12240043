// Checks Grafana dashboard JSON files against Grafana's own dashboard schema:
// the `Dashboard` type of @grafana/schema (generated from Grafana's dashboard
// kind), with the TypeScript compiler in strict mode. Each file becomes
// `const dashboard: Dashboard = <its JSON>;`, so a missing required field, a
// field of the wrong type or an unknown field is a compile error.
//
//   node check-grafana-dashboards.mjs a.json b.json ...
// Exit 0 when every file conforms; otherwise the errors, named by file.
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import ts from "typescript";

const here = path.dirname(fileURLToPath(import.meta.url));
const files = process.argv.slice(2);
if (files.length === 0) {
  console.error("usage: node check-grafana-dashboards.mjs DASHBOARD.json...");
  process.exit(2);
}
const work = fs.mkdtempSync(path.join(here, ".dashboard-check-"));
try {
  const sources = files.map((file, i) => {
    const json = JSON.parse(fs.readFileSync(file, "utf8"));
    const source = path.join(work, `dashboard${i}.ts`);
    fs.writeFileSync(
      source,
      `import type { Dashboard } from "@grafana/schema";\n` +
        `export const dashboard: Dashboard = ${JSON.stringify(json, null, 2)};\n`,
    );
    return { file, source };
  });
  const program = ts.createProgram(
    sources.map((s) => s.source),
    {
      strict: true,
      noEmit: true,
      module: ts.ModuleKind.NodeNext,
      moduleResolution: ts.ModuleResolutionKind.NodeNext,
      target: ts.ScriptTarget.ES2022,
      skipLibCheck: true,
    },
  );
  const diagnostics = ts.getPreEmitDiagnostics(program);
  for (const d of diagnostics) {
    const named = sources.find((s) => d.file && path.resolve(d.file.fileName) === s.source);
    const where = d.file && d.start !== undefined
      ? `${named ? named.file : d.file.fileName}:${d.file.getLineAndCharacterOfPosition(d.start).line}`
      : "";
    console.error(`${where} ${ts.flattenDiagnosticMessageText(d.messageText, "\n")}`);
  }
  if (diagnostics.length > 0) {
    process.exitCode = 1;
  } else {
    console.log(`${files.length} dashboard(s) conform to @grafana/schema's Dashboard`);
  }
} finally {
  fs.rmSync(work, { recursive: true, force: true });
}
