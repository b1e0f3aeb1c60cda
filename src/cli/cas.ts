/**
 * `tsraft cas KEY EXPECTED NEW`: sets KEY to NEW only if it currently holds EXPECTED;
 * `tsraft cas --absent KEY NEW` only if KEY is absent. Exit 1 (with the current value) if not swapped.
 * EXPECTED and NEW are values like put's (`-` standard input, @FILE, @@ a literal @).
 */
import { Command } from 'commander';
import { CliError, EXIT, UsageError } from './common.js';
import { callCluster, checkKey, makeClient, printLine, withClientOptions, type ClientOptions } from './kv-common.js';
import { printJson, readValues, wantsJson, withOutputOption, withValueOptions, type OutputOptions, type ValueOptions } from './values.js';

export function casCommand(): Command {
  return withOutputOption(
    withValueOptions(
      withClientOptions(
        new Command('cas')
          .description('compare-and-swap: set KEY to NEW if it holds EXPECTED (exit 1 if it does not)')
          .argument('<key>', 'the key')
          .argument('<expected>', 'the value KEY must hold (with --absent: the new value)')
          .argument('[new]', 'the new value')
          .option('--absent', 'swap only if KEY is absent: tsraft cas --absent KEY NEW')
          .addHelpText('after', '\nExamples:\n  tsraft cas counter 1 2          set counter to 2 if it is 1\n  tsraft cas --absent owner me    set owner to me if it has no value'),
      ),
    ),
  ).action(async (key: string, expectedArg: string, newArg: string | undefined, options: ClientOptions & ValueOptions & OutputOptions & { absent?: boolean }) => {
    checkKey(key);
    let expected: Uint8Array | null;
    let value: Uint8Array;
    if (options.absent === true) {
      if (newArg !== undefined) throw new UsageError('with --absent give only KEY and NEW: tsraft cas --absent KEY NEW');
      expected = null;
      [value] = (await readValues([expectedArg], ['NEW'], options)) as [Uint8Array];
    } else {
      if (newArg === undefined) throw new UsageError('missing NEW: tsraft cas KEY EXPECTED NEW (or tsraft cas --absent KEY NEW)');
      [expected, value] = (await readValues([expectedArg, newArg], ['EXPECTED', 'NEW'], options)) as [Uint8Array, Uint8Array];
    }
    const client = makeClient(options);
    const result = await callCluster(`cas ${JSON.stringify(key)}`, () => client.cas(key, expected, value));
    if (wantsJson(options)) {
      // Not swapped: `current` is the value KEY holds (as text), null if it is absent.
      printJson({ key, swapped: result.swapped, index: result.index, ...(result.swapped ? {} : { current: result.value }) });
      if (!result.swapped) process.exitCode = EXIT.failed;
      return;
    }
    if (!result.swapped) {
      throw new CliError(`not swapped: ${JSON.stringify(key)} ${result.value === null ? 'is absent' : `holds ${JSON.stringify(result.value)}`}`, EXIT.failed);
    }
    printLine('OK');
  });
}
