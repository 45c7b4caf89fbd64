// Text of a declarations file to plain objects (one object, an array, or a List per file), at a
// bounded cost and with messages that name the file, the place (line, column) and the reason but
// never quote the file. The bounded parsers are ../files/yaml.ts and ../files/strict-json.ts.
import { JsonSyntaxError, parseStrictJson } from '../files/strict-json';
import { DEFAULT_PARSE_BUDGET, YamlTextError, parseYamlDocuments, type ParseBudget } from '../files/yaml';
import { DeclarationError } from './sharememory';

export { DEFAULT_PARSE_BUDGET, type ParseBudget };

/** One object, an array of objects, or a List ({"kind": "...List", "items": [...]}). */
function unwrapList(v: unknown): unknown[] {
  if (Array.isArray(v)) return v;
  if (typeof v === 'object' && v !== null) {
    const o = v as Record<string, unknown>;
    if (typeof o.kind === 'string' && o.kind.endsWith('List') && Array.isArray(o.items)) return o.items;
  }
  return [v];
}

/** The objects of one file's text (JSON if the name ends in .json, else YAML); throws DeclarationError. */
export function parseDeclarationText(file: string, text: string, budget: ParseBudget = DEFAULT_PARSE_BUDGET): unknown[] {
  return file.toLowerCase().endsWith('.json') ? parseJson(file, text, budget) : parseYaml(file, text, budget);
}

function parseJson(file: string, text: string, budget: ParseBudget): unknown[] {
  if (text.trim() === '') return [];
  try {
    return unwrapList(parseStrictJson(text, { maxNodes: budget.maxNodes, maxDepth: budget.maxDepth }));
  } catch (err) {
    if (err instanceof JsonSyntaxError) throw new DeclarationError(file, '', `not valid JSON at ${err.message}`);
    throw err;
  }
}

function parseYaml(file: string, text: string, budget: ParseBudget): unknown[] {
  try {
    return parseYamlDocuments(text, budget).flatMap((v) => (v === null || v === undefined ? [] : unwrapList(v))); // "---" with nothing after it
  } catch (err) {
    if (err instanceof YamlTextError) throw new DeclarationError(file, '', err.message);
    throw err;
  }
}
