// Test helper: a child process cannot import .ts files on Node 20, so the kill -9 tests
// transpile src/ and test/train/ (types stripped, no checking) into a directory under the
// repository's build/ (ignored), keeping the layout so that relative imports, node_modules
// and the package root resolve as they do for the sources.
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

export const repoRoot = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

function walk(dir: string, out: string[]): void {
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) walk(p, out);
    else if (e.name.endsWith('.ts') && !e.name.endsWith('.d.ts') && !e.name.endsWith('.test.ts')) out.push(p);
  }
}

/** Transpiles `dirs` (relative to the repo) into `outRoot` (inside the repo); returns outRoot. */
export function transpileTree(outRoot: string, dirs: string[]): string {
  const files: string[] = [];
  for (const d of dirs) walk(join(repoRoot, d), files);
  for (const f of files) {
    const js = ts.transpileModule(readFileSync(f, 'utf8'), {
      compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022, verbatimModuleSyntax: false },
      fileName: f,
    }).outputText;
    const dest = join(outRoot, relative(repoRoot, f)).replace(/\.ts$/, '.js');
    mkdirSync(dirname(dest), { recursive: true });
    writeFileSync(dest, js);
  }
  return outRoot;
}
