import { existsSync } from 'node:fs';
import { join, dirname } from 'node:path';

/** Finds a file of the project's proto/ folder from wherever the compiled code runs (dist/ or a package). */
export function protoFile(name: string): string {
  let dir = __dirname;
  for (;;) {
    const candidate = join(dir, 'proto', name);
    if (existsSync(candidate)) return candidate;
    const up = dirname(dir);
    if (up === dir) throw new Error(`proto file ${name} not found above ${__dirname}`);
    dir = up;
  }
}
