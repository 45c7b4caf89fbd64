// YAML text from an untrusted file to plain values, at a bounded cost and with messages that give
// the place (line, column) and the reason but never quote the text (the caller names the file).
// Why bounds: the yaml library checks duplicate keys pairwise (80,000 keys in one mapping took
// over a minute), and even its linear work is slow (about 10 µs per token). So a text is first
// lexed, which is cheap and can stop early, and refused past a token budget or a nesting limit;
// it is then composed without the library's quadratic check, and duplicate keys are found here
// with a set, linearly.
import type { CST, Document, Node } from 'yaml';
import { messageOf } from '../model/errors';
// the yaml library is loaded at the first YAML text: a node whose declarations are JSON (or that
// has none) never pays its start-up time and memory
let yamlModule: typeof import('yaml') | undefined;
const yaml = (): typeof import('yaml') => (yamlModule ??= require('yaml') as typeof import('yaml'));

export interface ParseBudget {
  /** most YAML tokens (keys, values, indicators; not spaces or comments) or JSON values (default 50000) */
  maxNodes: number;
  /** deepest nesting of mappings and sequences (default 32; a ShareMemory needs 3) */
  maxDepth: number;
}

// 50,000: a ShareMemory is about 25 tokens, one with the most allowedNamespaces (1024) about
// 2,100, so a file holds some 2,000 plain declarations or 20 of the largest; parsing that much
// costs about half a second of the scan worker's time, and a larger set can be split into files.
export const DEFAULT_PARSE_BUDGET: ParseBudget = { maxNodes: 50_000, maxDepth: 32 };

/** Line and column (1-based) of an offset. */
function lineCol(text: string, offset: number): string {
  let line = 1;
  let start = 0;
  for (let i = text.indexOf('\n'); i >= 0 && i < offset; i = text.indexOf('\n', i + 1)) {
    line++;
    start = i + 1;
  }
  return `line ${line}, column ${offset - start + 1}`;
}

/** A YAML text that is refused: where and why, never its content. */
export class YamlTextError extends Error {
  constructor(readonly detail: string) {
    super(`not valid YAML${detail}`);
    this.name = 'YamlTextError';
  }
}

// the file is named by the caller (DeclarationError, KubeconfigError); here only place and reason
function yamlError(text: string, offset: number, reason: string, doc?: number): YamlTextError {
  const where = doc !== undefined ? ` (document ${doc})` : '';
  return new YamlTextError(`${where} at ${lineCol(text, offset)}: ${reason}`);
}

/** Refuses a text past the budget before the expensive stages see it. */
function lexWithinBudget(text: string, budget: ParseBudget): void {
  let tokens = 0;
  let flowDepth = 0;
  let offset = 0;
  for (const tok of new (yaml().Lexer)().lex(text)) {
    const type = yaml().CST.tokenType(tok);
    if (type === 'flow-map-start' || type === 'flow-seq-start') {
      if (++flowDepth > budget.maxDepth) throw yamlError(text, offset, `nested deeper than ${budget.maxDepth} levels`);
    } else if (type === 'flow-map-end' || type === 'flow-seq-end') {
      flowDepth = Math.max(0, flowDepth - 1);
    }
    if (type !== 'space' && type !== 'newline' && type !== 'comment' && tok !== yaml().CST.SCALAR) {
      if (++tokens > budget.maxNodes) {
        throw yamlError(text, offset, `more than ${budget.maxNodes} YAML tokens (the limit for one file; split it into several files)`);
      }
    }
    if (tok !== yaml().CST.SCALAR && tok !== yaml().CST.DOCUMENT && tok !== yaml().CST.FLOW_END) offset += tok.length;
  }
}

/** Nesting of the CST (block collections included), walked without recursion. */
function checkDepth(text: string, docs: CST.Token[], maxDepth: number): void {
  const stack: Array<{ token: CST.Token; depth: number }> = docs.map((token) => ({ token, depth: 0 }));
  while (stack.length) {
    const { token, depth } = stack.pop()!;
    if (depth > maxDepth) throw yamlError(text, token.offset, `nested deeper than ${maxDepth} levels`);
    if (token.type === 'document') {
      if (token.value) stack.push({ token: token.value, depth });
    } else if (yaml().CST.isCollection(token)) {
      for (const item of token.items) {
        if (item.key) stack.push({ token: item.key, depth: depth + 1 });
        if (item.value) stack.push({ token: item.value, depth: depth + 1 });
      }
    }
  }
}

/** Duplicate and non-scalar keys, found linearly (the library's check is pairwise). */
function checkKeys(text: string, root: Node | null, doc: number | undefined): void {
  const stack: Array<Node | null> = [root];
  while (stack.length) {
    const node = stack.pop();
    if (!node || yaml().isScalar(node) || yaml().isAlias(node)) continue;
    if (yaml().isSeq(node)) {
      for (const item of node.items) stack.push(item as Node | null);
    } else if (yaml().isMap(node)) {
      const seen = new Set<string>();
      for (const pair of node.items) {
        const key = pair.key as Node | null;
        const at = key?.range?.[0] ?? node.range?.[0] ?? 0;
        if (key !== null && !yaml().isScalar(key)) throw yamlError(text, at, 'a mapping key that is not a plain value (a list, mapping or alias)', doc);
        // "1" and 1 become the same property of the object: a duplicate too
        const name = key === null ? '' : String(key.value);
        if (seen.has(name)) throw yamlError(text, at, 'duplicate key (each key may appear once in a mapping)', doc);
        seen.add(name);
        stack.push(pair.value as Node | null);
      }
    }
  }
}

/**
 * YAML 1.2 only. A `%YAML 1.1` directive would switch the library to the 1.1 schema for that
 * document: merge keys (`<<: *anchor` pulls fields from elsewhere and sets keys twice past the
 * duplicate check) and yes/no/on/off booleans. Any other version is refused too, rather than
 * read as 1.2 with a warning no one sees.
 */
function checkVersionDirectives(text: string, cst: CST.Token[]): void {
  for (const tok of cst) {
    if (tok.type !== 'directive') continue;
    const [name, version] = tok.source.trim().split(/\s+/);
    if (name === '%YAML' && version !== '1.2') {
      // the version is digits and dots or refused unquoted: only a short, printable form is named
      const shown = /^\d{1,3}\.\d{1,3}$/.test(version ?? '') ? version : 'other';
      throw yamlError(text, tok.offset, `a %YAML ${shown} directive: only YAML 1.2 is accepted (1.1 turns on merge keys and yes/no booleans)`);
    }
  }
}

/** The value of each document of a YAML text, within the budget; throws YamlTextError. */
export function parseYamlDocuments(text: string, budget: ParseBudget = DEFAULT_PARSE_BUDGET): unknown[] {
  lexWithinBudget(text, budget);
  const cst = [...new (yaml().Parser)().parse(text)];
  checkDepth(text, cst, budget.maxDepth);
  checkVersionDirectives(text, cst);
  // pinned, not left to the library's defaults: the 1.2 core schema, no merge keys
  const docs: Document.Parsed[] = [...new (yaml().Composer)({ uniqueKeys: false, version: '1.2', merge: false, schema: 'core' }).compose(cst)];
  const out: unknown[] = [];
  docs.forEach((doc, i) => {
    const n = docs.length > 1 ? i + 1 : undefined;
    const first = doc.errors[0];
    // the reason from the error's code: the library's messages can quote the text
    if (first) throw yamlError(text, first.pos[0], first.code.toLowerCase().replace(/_/g, ' '), n);
    checkKeys(text, doc.contents, n);
    let v: unknown;
    try {
      v = doc.toJS({ maxAliasCount: 100 });
    } catch (err) {
      // the library's message can name an anchor of the text: say only which kind of failure
      const msg = messageOf(err);
      const reason = /alias count/i.test(msg)
        ? 'aliases expand to more than 100 nodes'
        : /unresolved alias/i.test(msg)
          ? 'an alias refers to an anchor not defined before it'
          : 'cannot be turned into objects';
      throw new YamlTextError(`${n ? ` (document ${n})` : ''}: ${reason}`);
    }
    out.push(v);
  });
  return out;
}
