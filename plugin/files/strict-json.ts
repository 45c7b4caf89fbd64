// A strict JSON parser for files an operator (or an attacker with write access) hands the agent.
// Why not JSON.parse: its syntax errors quote the input ("Unexpected token 'r', "root:x:0:0:..."
// is not valid JSON"), so a message would echo the bytes of whatever file it was pointed at;
// it silently keeps the last of duplicate keys, where YAML refuses them; and it has no bound on
// nesting or size. This one reports line, column and a reason that never contains input, refuses
// duplicate keys, and stops at a node budget and a depth limit. Values are what JSON.parse gives.

export interface JsonLimits {
  /** most values (objects, arrays, strings, numbers, literals) in one text (default 100000) */
  maxNodes?: number;
  /** deepest nesting of objects and arrays (default 64) */
  maxDepth?: number;
}

/** A syntax error: where (1-based line and column) and why, never the input itself. */
export class JsonSyntaxError extends Error {
  constructor(
    readonly line: number,
    readonly column: number,
    readonly reason: string,
  ) {
    super(`line ${line}, column ${column}: ${reason}`);
    this.name = 'JsonSyntaxError';
  }
}

const WS = new Set([0x20, 0x09, 0x0a, 0x0d]);

/** Parses one JSON text; throws JsonSyntaxError. */
export function parseStrictJson(text: string, limits: JsonLimits = {}): unknown {
  const maxNodes = limits.maxNodes ?? 100_000;
  const maxDepth = limits.maxDepth ?? 64;
  let pos = 0;
  let nodes = 0;

  const fail = (reason: string, at = pos): never => {
    let line = 1;
    let lineStart = 0;
    for (let i = 0; i < at && i < text.length; i++) {
      if (text.charCodeAt(i) === 0x0a) {
        line++;
        lineStart = i + 1;
      }
    }
    throw new JsonSyntaxError(line, at - lineStart + 1, reason);
  };
  // describes the character at pos by class only, so no input reaches a message
  const found = (): string => {
    if (pos >= text.length) return 'the end of the text';
    const c = text.charCodeAt(pos);
    if (c < 0x20 || c === 0x7f) return 'a control character';
    if (c >= 0x80) return 'a non-ASCII character';
    if ((c >= 0x30 && c <= 0x39) || c === 0x2d) return 'a number';
    if ((c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a)) return 'a letter';
    return `'${text[pos]}'`; // punctuation alone tells nothing of a file's content
  };
  const skipWs = () => {
    while (pos < text.length && WS.has(text.charCodeAt(pos))) pos++;
  };
  const count = () => {
    if (++nodes > maxNodes) fail(`more than ${maxNodes} values (the limit for one file)`);
  };

  const parseValue = (depth: number): unknown => {
    skipWs();
    count();
    const c = text[pos];
    if (c === '{') return parseObject(depth + 1);
    if (c === '[') return parseArray(depth + 1);
    if (c === '"') return parseString();
    if (c === '-' || (c >= '0' && c <= '9')) return parseNumber();
    for (const [word, value] of [['true', true], ['false', false], ['null', null]] as const) {
      if (text.startsWith(word, pos)) {
        pos += word.length;
        return value;
      }
    }
    return fail(`expected a value, found ${found()}`);
  };

  // an object or an array: its opening bracket, members separated by commas, its closing bracket
  const parseMembers = (depth: number, close: '}' | ']', what: string, member: () => void): void => {
    if (depth > maxDepth) fail(`nested deeper than ${maxDepth} levels`);
    pos++; // { or [
    skipWs();
    if (text[pos] === close) {
      pos++;
      return;
    }
    for (;;) {
      member();
      skipWs();
      if (text[pos] === ',') {
        pos++;
        continue;
      }
      if (text[pos] === close) {
        pos++;
        return;
      }
      fail(`expected ',' or '${close}' in ${what}, found ${found()}`);
    }
  };

  const parseObject = (depth: number): Record<string, unknown> => {
    const obj: Record<string, unknown> = {};
    const keys = new Set<string>();
    parseMembers(depth, '}', 'an object', () => {
      skipWs();
      if (text[pos] !== '"') fail(`expected a key in double quotes, found ${found()}`);
      const keyAt = pos;
      const key = parseString();
      if (keys.has(key)) fail('duplicate key (each key may appear once in an object)', keyAt);
      keys.add(key);
      skipWs();
      if (text[pos] !== ':') fail(`expected ':' after a key, found ${found()}`);
      pos++;
      // defineProperty: a key "__proto__" must be data, as JSON.parse makes it, not a prototype
      Object.defineProperty(obj, key, { value: parseValue(depth), enumerable: true, writable: true, configurable: true });
    });
    return obj;
  };

  const parseArray = (depth: number): unknown[] => {
    const arr: unknown[] = [];
    parseMembers(depth, ']', 'an array', () => arr.push(parseValue(depth)));
    return arr;
  };

  const parseString = (): string => {
    const start = pos;
    pos++; // "
    let out = '';
    let run = pos;
    for (;;) {
      if (pos >= text.length) fail('a string is not closed', start);
      const c = text.charCodeAt(pos);
      if (c === 0x22) {
        out += text.slice(run, pos);
        pos++;
        return out;
      }
      if (c < 0x20) fail('a control character inside a string (write it as an escape such as \\n)');
      if (c !== 0x5c) {
        pos++;
        continue;
      }
      out += text.slice(run, pos);
      const e = text[pos + 1];
      const simple: Record<string, string> = { '"': '"', '\\': '\\', '/': '/', b: '\b', f: '\f', n: '\n', r: '\r', t: '\t' };
      if (e !== undefined && Object.prototype.hasOwnProperty.call(simple, e)) {
        out += simple[e];
        pos += 2;
      } else if (e === 'u' && /^[0-9a-fA-F]{4}$/.test(text.slice(pos + 2, pos + 6))) {
        out += String.fromCharCode(parseInt(text.slice(pos + 2, pos + 6), 16));
        pos += 6;
      } else {
        fail('an invalid escape in a string');
      }
      run = pos;
    }
  };

  const NUMBER = /-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?/y;
  const parseNumber = (): number => {
    NUMBER.lastIndex = pos;
    const m = NUMBER.exec(text);
    if (!m || m[0] === '-' || m[0] === '') return fail('an invalid number');
    pos += m[0].length;
    const next = text[pos];
    if (next !== undefined && /[0-9.eE+\-a-zA-Z]/.test(next)) fail('an invalid number');
    return Number(m[0]);
  };

  if (text.charCodeAt(0) === 0xfeff) pos = 1; // a byte-order mark, as editors on some systems write
  const value = parseValue(0);
  skipWs();
  if (pos < text.length) fail(`expected the end of the text after the value, found ${found()}`);
  return value;
}
