// Wrapping an error keeps the original as `cause` (for logs and debuggers) and its message in
// the text (for users, who see only the message through CRI or the CLI).

/** The message of any thrown value. */
export function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** A new Error "<context>: <cause's message>" with `cause` set. */
export function wrapError(context: string, cause: unknown): Error {
  return new Error(`${context}: ${messageOf(cause)}`, { cause });
}
