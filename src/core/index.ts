export { assert, InvariantError } from './assert.js';
export {
  DEFAULT_SNAPSHOT_CHUNK_BYTES,
  DEFAULT_TIMING,
  validateConfig,
  type RaftConfig,
} from './config.js';
export * from './messages.js';
export { RaftCore, type MembershipRefusal, type ProposeResult, type RaftStatus, type Role } from './raft.js';
export {
  addressOf,
  allMembers,
  allVoters,
  applySteps,
  checkMembership,
  describeMembership,
  initialMembership,
  isJoint,
  isVoter,
  type MemberAddress,
  type Membership,
  type MembershipStep,
} from './membership.js';
export type { Ready, LogWrite, ReadState } from './ready.js';
export { hasWrites, isEmptyReady } from './ready.js';
export type { RandomSource } from './rng.js';
export type { Progress, ProgressState } from './progress.js';
