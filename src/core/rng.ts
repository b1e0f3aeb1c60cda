/**
 * The only source of randomness the core may use, injected by the driver so that a run is a
 * function of its seed.
 */
export interface RandomSource {
  /** A uniformly distributed integer in [0, maxExclusive). */
  nextInt(maxExclusive: number): number;
}
