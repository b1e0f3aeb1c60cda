/** An error for a log line: its stack when it has one (where a bug is), else its name and message. */
export function describeError(error: unknown): string {
  return error instanceof Error ? (error.stack ?? `${error.name}: ${error.message}`) : String(error);
}
