// The one shape every part logs through: pino's (fields first, then the message), so the agent
// hands its pino logger to each part as it is, and a test hands a plain object.
export interface Log {
  debug(detail: object, msg?: string): void;
  info(detail: object, msg?: string): void;
  warn(detail: object, msg?: string): void;
  error(detail: object, msg?: string): void;
}
