/**
 * The 6.824 staff solution's published figures (2022 handout, reused in 2023 and 2024), per test
 * title: seconds, peers, RPCs, bytes, committed entries. The suite runner prints them beside ours.
 */
export interface ReferenceFigures {
  readonly seconds: number;
  readonly peers: number;
  readonly rpcs: number;
  readonly bytes: number;
  readonly commands: number;
}

export const STAFF_2022: Readonly<Record<string, ReferenceFigures>> = {
  'initial election': { seconds: 3.5, peers: 3, rpcs: 58, bytes: 16840, commands: 0 },
  'election after network failure': { seconds: 5.4, peers: 3, rpcs: 118, bytes: 25269, commands: 0 },
  'multiple elections': { seconds: 7.3, peers: 7, rpcs: 624, bytes: 138014, commands: 0 },
  'basic agreement': { seconds: 0.9, peers: 3, rpcs: 16, bytes: 4572, commands: 3 },
  'RPC byte count': { seconds: 1.7, peers: 3, rpcs: 48, bytes: 114536, commands: 11 },
  'agreement after follower reconnects': { seconds: 3.6, peers: 3, rpcs: 78, bytes: 22131, commands: 7 },
  'no agreement if too many followers disconnect': { seconds: 3.8, peers: 5, rpcs: 172, bytes: 40935, commands: 3 },
  'concurrent Start()s': { seconds: 1.1, peers: 3, rpcs: 24, bytes: 7379, commands: 6 },
  'rejoin of partitioned leader': { seconds: 5.1, peers: 3, rpcs: 152, bytes: 37021, commands: 4 },
  'leader backs up quickly over incorrect follower logs': { seconds: 17.2, peers: 5, rpcs: 2080, bytes: 1587388, commands: 102 },
  "RPC counts aren't too high": { seconds: 2.2, peers: 3, rpcs: 60, bytes: 20119, commands: 12 },
  'basic persistence': { seconds: 5.0, peers: 3, rpcs: 86, bytes: 22849, commands: 6 },
  'more persistence': { seconds: 17.6, peers: 5, rpcs: 952, bytes: 218854, commands: 16 },
  'partitioned leader and one follower crash, leader restarts': { seconds: 2.0, peers: 3, rpcs: 34, bytes: 8937, commands: 4 },
  'Figure 8': { seconds: 31.2, peers: 5, rpcs: 580, bytes: 130675, commands: 32 },
  'unreliable agreement': { seconds: 1.7, peers: 5, rpcs: 1044, bytes: 366392, commands: 246 },
  'Figure 8 (unreliable)': { seconds: 33.6, peers: 5, rpcs: 10700, bytes: 33695245, commands: 308 },
  churn: { seconds: 16.1, peers: 5, rpcs: 8864, bytes: 44771259, commands: 1544 },
  'unreliable churn': { seconds: 16.5, peers: 5, rpcs: 4220, bytes: 6414632, commands: 906 },
  'snapshots basic': { seconds: 11.6, peers: 3, rpcs: 176, bytes: 61716, commands: 192 },
  'install snapshots (disconnect)': { seconds: 64.2, peers: 3, rpcs: 878, bytes: 320610, commands: 336 },
  'install snapshots (disconnect+unreliable)': { seconds: 81.1, peers: 3, rpcs: 1059, bytes: 375850, commands: 341 },
  'install snapshots (crash)': { seconds: 53.5, peers: 3, rpcs: 601, bytes: 256638, commands: 339 },
  'install snapshots (unreliable+crash)': { seconds: 63.5, peers: 3, rpcs: 687, bytes: 288294, commands: 336 },
  'crash and restart all servers': { seconds: 19.5, peers: 3, rpcs: 268, bytes: 81352, commands: 58 },
};

/** The reference for a printed title such as "Test (2B): basic agreement". */
export function staffFigures(title: string): ReferenceFigures | undefined {
  return STAFF_2022[title.replace(/^Test \(\w+\): /, '')];
}
