// Parse AsyncAPI documents with the reference parser (@asyncapi/parser) and print what it finds.
//   node tools/asyncapi/validate.mjs docs/asyncapi.json
// Prints one JSON object per document: whether it parsed, its version, the count of error and
// warning diagnostics, every diagnostic, how many messages it has and how many of their payloads
// still hold a $ref after resolution. Exit status 1 when a document has an error-level
// diagnostic or does not parse at all.
import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { DiagnosticSeverity, Parser } from '@asyncapi/parser';

const SEVERITY = {
  [DiagnosticSeverity.Error]: 'error',
  [DiagnosticSeverity.Warning]: 'warning',
  [DiagnosticSeverity.Information]: 'info',
  [DiagnosticSeverity.Hint]: 'hint',
};

async function check(file) {
  const source = resolve(file);
  const text = await readFile(source, 'utf8');
  // `source` anchors relative $refs at the file itself: a document that leans on files beside
  // it fails here exactly as it would for a reader who downloaded only the document.
  const { document, diagnostics } = await new Parser().parse(text, { source });
  const found = diagnostics.map((d) => ({
    severity: SEVERITY[d.severity] ?? String(d.severity),
    code: d.code,
    message: d.message,
    path: d.path.join('/'),
  }));
  const errors = found.filter((d) => d.severity === 'error').length;
  const messages = document ? document.allMessages().all() : [];
  const unresolved = messages.filter((m) => {
    const payload = m.payload();
    return payload === undefined || JSON.stringify(payload.json()).includes('"$ref"');
  });
  const report = {
    file,
    parsed: document !== undefined,
    asyncapi: document?.version() ?? null,
    errors,
    warnings: found.filter((d) => d.severity === 'warning').length,
    diagnostics: found,
    messages: messages.length,
    unresolved_payloads: unresolved.map((m) => m.id()),
  };
  process.stdout.write(JSON.stringify(report) + '\n');
  return errors === 0 && document !== undefined;
}

const files = process.argv.slice(2);
if (files.length === 0) {
  process.stderr.write('usage: node validate.mjs FILE...\n');
  process.exit(2);
}
let ok = true;
for (const file of files) ok = (await check(file)) && ok;
process.exit(ok ? 0 : 1);
