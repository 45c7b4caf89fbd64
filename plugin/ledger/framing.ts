// Checksummed JSON lines: "<crc32 of json, 8 hex digits> <json>\n". A line whose checksum, JSON
// or newline is missing or wrong is reported and skipped; its neighbours are unaffected.
type Crc32 = (data: Buffer) => number;

// The same CRC-32 (IEEE) two ways: in JS for a record's line (a few hundred bytes: quicker than a
// call into zlib, and loading node:zlib costs the agent's start-up ~8 ms), zlib's for longer
// input (zlib.crc32 exists from Node 20.15; older 20.x stays in JS).
const NATIVE_CRC_FROM_BYTES = 4096;
let zlibCrc32: Crc32 | null | undefined;
export function crc32(data: Buffer): number {
  if (data.length < NATIVE_CRC_FROM_BYTES) return jsCrc32(data);
  zlibCrc32 ??= (require('node:zlib') as { crc32?: Crc32 }).crc32 ?? null;
  return zlibCrc32 ? zlibCrc32(data) : jsCrc32(data);
}

let table: Uint32Array | undefined;
function jsCrc32(data: Buffer): number {
  if (!table) {
    table = new Uint32Array(256);
    for (let n = 0; n < 256; n++) {
      let c = n;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
      table[n] = c >>> 0;
    }
  }
  let crc = 0xffffffff;
  for (let i = 0; i < data.length; i++) crc = table[(crc ^ data[i]) & 0xff] ^ (crc >>> 8);
  return (crc ^ 0xffffffff) >>> 0;
}

/** One framed line for `value`, newline included. */
export function encodeLine(value: unknown): Buffer {
  const text = JSON.stringify(value);
  // one allocation: reconcile may frame 10,000 of these at once
  const line = Buffer.allocUnsafe(9 + Buffer.byteLength(text, 'utf8') + 1);
  const end = 9 + line.write(text, 9, 'utf8');
  line.write(crc32(line.subarray(9, end)).toString(16).padStart(8, '0'), 0, 'latin1');
  line[8] = 0x20;
  line[end] = 0x0a;
  return line;
}

export interface DecodedLines {
  values: Array<{ value: unknown; line: number }>;
  /** human-readable descriptions of skipped lines */
  problems: string[];
  /** bytes up to and including the last newline: where the next append must start */
  completeBytes: number;
  /** true when the data ended in a line without its newline (an interrupted append) */
  tornTail: boolean;
}

/** Splits and checks framed lines; `what` names the file in problem messages. */
export function decodeLines(data: Buffer, what: string): DecodedLines {
  const out: DecodedLines = { values: [], problems: [], completeBytes: 0, tornTail: false };
  let start = 0;
  let line = 0;
  while (start < data.length) {
    line++;
    const nl = data.indexOf(0x0a, start);
    if (nl < 0) {
      out.tornTail = true;
      out.problems.push(`${what}: line ${line} (byte ${start}) is incomplete (${data.length - start} bytes without a newline: an interrupted write); dropped`);
      break;
    }
    const problem = checkLine(data, start, nl);
    if (typeof problem === 'string') out.problems.push(`${what}: line ${line} (byte ${start}) ${problem}; skipped`);
    else out.values.push({ value: problem.value, line });
    start = nl + 1;
    out.completeBytes = start;
  }
  return out;
}

function checkLine(data: Buffer, start: number, end: number): { value: unknown } | string {
  if (end - start < 10 || data[start + 8] !== 0x20) return 'has no checksum';
  const want = parseInt(data.toString('latin1', start, start + 8), 16);
  const json = data.subarray(start + 9, end);
  if (!/^[0-9a-f]{8}$/.test(data.toString('latin1', start, start + 8)) || crc32(json) !== want) {
    return 'fails its checksum (damaged)';
  }
  try {
    return { value: JSON.parse(json.toString('utf8')) as unknown };
  } catch {
    return 'has a valid checksum but is not JSON';
  }
}
