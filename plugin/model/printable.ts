// Text that came from a file, a key or a tenant, made safe to print on a terminal: control
// characters (C0, DEL, C1 such as the 8-bit CSI), line and paragraph separators and bidi
// controls are written as escapes, so such text can neither start a line of its own (a forged
// "warning:") nor move the cursor, recolour or reorder what follows.
const UNSAFE = /[\u0000-\u001f\u007f-\u009f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069]/g;
const SHORT: Record<string, string> = { '\n': '\\n', '\r': '\\r', '\t': '\\t' };

/** `text` with every unsafe character escaped (\n, \r, \t, \xNN, \uNNNN); the rest unchanged. */
export function printable(text: string): string {
  return text.replace(UNSAFE, (c) => {
    const code = c.charCodeAt(0);
    return SHORT[c] ?? (code <= 0xff ? `\\x${code.toString(16).padStart(2, '0')}` : `\\u${code.toString(16).padStart(4, '0')}`);
  });
}

// what JSON.stringify leaves raw (it escapes C0 inside strings; C0 outside them is its layout)
const UNSAFE_IN_JSON = /[\u007f-\u009f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069]/g;

/** JSON.stringify's text with DEL, C1, separators and bidi controls as \u escapes: the same value, safe on a terminal. */
export function printableJson(json: string): string {
  return json.replace(UNSAFE_IN_JSON, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/** A name for a message: bare when it is letters, digits, "_" and "-" only, else quoted and escaped. */
export function quotedName(name: string): string {
  return /^[A-Za-z0-9_-]+$/.test(name) ? name : printable(JSON.stringify(name));
}
