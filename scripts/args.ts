/** Command-line helpers shared by the suite runner and the explorer. */

/** Bad command-line input: printed with the usage text, exit code 2, never a stack trace. */
export class UsageError extends Error {}

export function integerOption(name: string, text: string, min: number): number {
  const value = Number(text);
  if (!Number.isSafeInteger(value) || value < min) throw new UsageError(`--${name} must be an integer >= ${min}, got "${text}"`);
  return value;
}

/** The seeds of `--seed S` or `--seeds N [--first-seed F]`. */
export function seedList(values: { seed?: string | undefined; seeds?: string | undefined; 'first-seed'?: string | undefined }, defaultCount: number): number[] {
  if (values.seed !== undefined) {
    if (values.seeds !== undefined) throw new UsageError('give either --seed or --seeds, not both');
    return [integerOption('seed', values.seed, 0)];
  }
  const count = integerOption('seeds', values.seeds ?? String(defaultCount), 1);
  const first = integerOption('first-seed', values['first-seed'] ?? '1', 0);
  return Array.from({ length: count }, (_, i) => first + i);
}

/** Whether an error from parsePlan/parseOptions is the user's (usage) rather than a bug. */
export function isUsageError(error: unknown): boolean {
  return error instanceof UsageError || ((error as { code?: string }).code?.startsWith('ERR_PARSE_ARGS') ?? false);
}

export function median(values: readonly number[]): number {
  if (values.length === 0) return 0;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}
