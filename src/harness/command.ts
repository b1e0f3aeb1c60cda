/**
 * Test commands are the values 6.824's tests pass to Start(): integers and strings. The core carries
 * opaque bytes, so the harness tags each value with its type; two commands are equal when type and
 * value are (Go's interface equality).
 */
export type Command = number | string;

const INTEGER_TAG = 0x69; // 'i'
const STRING_TAG = 0x73; // 's'
const encoder = new TextEncoder();
const decoder = new TextDecoder('utf-8', { fatal: true });

export function encodeCommand(command: Command): Uint8Array {
  if (typeof command === 'number') {
    if (!Number.isSafeInteger(command)) throw new RangeError(`integer commands must be safe integers, got ${command}`);
    return withTag(INTEGER_TAG, encoder.encode(String(command)));
  }
  return withTag(STRING_TAG, encoder.encode(command));
}

export function decodeCommand(bytes: Uint8Array): Command {
  const text = decoder.decode(bytes.subarray(1));
  if (bytes[0] === INTEGER_TAG) return Number(text);
  if (bytes[0] === STRING_TAG) return text;
  throw new Error(`not a harness command: tag ${bytes[0]}`);
}

/** How a command prints in failure messages: strings are shortened, as 5000-character ones are common. */
export function describeCommand(command: Command | undefined): string {
  if (command === undefined) return '<nil>';
  if (typeof command === 'number') return String(command);
  return command.length > 24 ? `"${command.slice(0, 20)}…"(${command.length} chars)` : JSON.stringify(command);
}

function withTag(tag: number, body: Uint8Array): Uint8Array {
  const bytes = new Uint8Array(body.length + 1);
  bytes[0] = tag;
  bytes.set(body, 1);
  return bytes;
}
