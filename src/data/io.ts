// Reading and writing JSON and JSONL files: errors name the file and line; writes go to a
// temporary file that is fsynced and renamed, so a file is never half-written.
import { closeSync, fsyncSync, openSync, readFileSync, renameSync, unlinkSync, writeSync } from 'node:fs';
import { dirname, basename, join } from 'node:path';

/** Reads rows from a .json file (an array, or one object) or a .jsonl file (one object a line). */
export function readRows(file: string): unknown[] {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new Error(`cannot read ${file}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`);
  }
  return parseRows(text, file);
}

/** Parses JSON or JSONL text (decided by content: a top-level array or a single object is JSON). */
export function parseRows(text: string, file = '(text)'): unknown[] {
  const t = text.trim();
  if (t === '') return [];
  if (t.startsWith('[')) {
    try {
      const v = JSON.parse(t) as unknown;
      if (Array.isArray(v)) return v;
    } catch (e) {
      throw new Error(`${file}: not valid JSON: ${(e as Error).message}`);
    }
  }
  const lines = text.split('\n');
  const rows: unknown[] = [];
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!.trim();
    if (line === '') continue;
    try {
      rows.push(JSON.parse(line));
    } catch (e) {
      // a pretty-printed single JSON object spans many lines
      if (rows.length === 0 && t.startsWith('{')) {
        try {
          return [JSON.parse(t)];
        } catch {
          /* report the line error below */
        }
      }
      throw new Error(`${file}:${i + 1}: not valid JSON: ${(e as Error).message}`);
    }
  }
  return rows;
}

/** Writes text atomically: temp file in the same folder, fsync, rename. */
export function writeFileAtomic(file: string, text: string): void {
  const tmp = join(dirname(file), `.${basename(file)}.${process.pid}.${Date.now()}.tmp`);
  let fd: number | undefined;
  try {
    fd = openSync(tmp, 'w');
    writeSync(fd, text);
    fsyncSync(fd);
    closeSync(fd);
    fd = undefined;
    renameSync(tmp, file);
  } catch (e) {
    if (fd !== undefined) closeSync(fd);
    try {
      unlinkSync(tmp);
    } catch {
      /* nothing to clean */
    }
    throw new Error(`cannot write ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
}

/** Writes rows as JSONL (one JSON object a line). */
export function writeJsonl(file: string, rows: readonly unknown[]): void {
  writeFileAtomic(file, rows.map((r) => JSON.stringify(r)).join('\n') + (rows.length ? '\n' : ''));
}

/** Writes rows as one pretty JSON array. */
export function writeJson(file: string, rows: readonly unknown[]): void {
  writeFileAtomic(file, JSON.stringify(rows, null, 2) + '\n');
}

/** Writes rows as JSON or JSONL by the file's extension (.json: array; anything else: JSONL). */
export function writeRows(file: string, rows: readonly unknown[]): void {
  if (file.endsWith('.json')) writeJson(file, rows);
  else writeJsonl(file, rows);
}
