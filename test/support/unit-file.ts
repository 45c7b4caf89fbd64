// Reads a systemd unit file the way the tests need it: key -> every value assigned in a section,
// in order (comments and blank lines ignored).
import { readFileSync } from 'node:fs';

export function unitSection(path: string, name: string): Map<string, string[]> {
  const out = new Map<string, string[]>();
  let current = '';
  for (const raw of readFileSync(path, 'utf8').split('\n')) {
    const line = raw.trim();
    if (!line || line.startsWith('#') || line.startsWith(';')) continue;
    const h = /^\[(.+)\]$/.exec(line);
    if (h) {
      current = h[1];
      continue;
    }
    if (current !== name) continue;
    const eq = line.indexOf('=');
    const k = line.slice(0, eq);
    out.set(k, [...(out.get(k) ?? []), line.slice(eq + 1)]);
  }
  return out;
}
