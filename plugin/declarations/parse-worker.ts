// The scan worker: parses declaration files off the agent's main thread, so a file at the parse
// budget (up to about half a second of yaml) never delays a binding being answered there.
import { parentPort } from 'node:worker_threads';
import { parseDeclarationText, type ParseBudget } from './parse';
import { DeclarationError } from './sharememory';
import { messageOf } from '../model/errors';

export interface ParseRequest {
  id: number;
  file: string;
  text: string;
  budget: ParseBudget;
}

export type ParseReply =
  | { id: number; objects: unknown[] }
  | { id: number; error: { origin: string; field: string; reason: string } | { message: string } };

parentPort?.on('message', (req: ParseRequest) => {
  let reply: ParseReply;
  try {
    reply = { id: req.id, objects: parseDeclarationText(req.file, req.text, req.budget) };
  } catch (err) {
    reply = {
      id: req.id,
      error: err instanceof DeclarationError ? { origin: err.origin, field: err.field, reason: err.reason } : { message: messageOf(err) },
    };
  }
  try {
    parentPort?.postMessage(reply);
  } catch {
    // a value structured clone cannot carry (the parser makes none; a guard, not a path)
    parentPort?.postMessage({ id: req.id, error: { message: `${req.file}: the parsed objects cannot be passed back` } });
  }
});
