/**
 * The one helper for running a generation to its end in tests: iterates a generator (generate(), Model.generate)
 * past every yielded piece and returns its return value (the GenerationResult: ids, text, finish reason).
 */
export async function drain<R>(gen: AsyncGenerator<unknown, R>): Promise<R> {
  let r = await gen.next();
  while (!r.done) r = await gen.next();
  return r.value;
}
