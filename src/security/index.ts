/** Certificates and identities for mutual TLS (see `certs.ts`), and the HTTP API's principals (see `auth-file.ts`). */
export {
  clientIdentity,
  createCa,
  createClientCertificate,
  createNodeCertificate,
  nodeIdentityUri,
  parseNodeIdentityUri,
  peerIdentity,
  type CertificateAndKey,
  type CertificateInput,
  type ClientIdentity,
  type CreateCaOptions,
  type CreateClientCertificateOptions,
  type CreateNodeCertificateOptions,
  type PeerIdentity,
} from './certs.js';
/** Principals, roles and the HTTP API's auth file (see `auth-file.ts`). */
export {
  authPolicy,
  generateToken,
  hashToken,
  parseAuthFile,
  readAuthFile,
  validateAuthFile,
  ROLES,
  type AuthFile,
  type AuthFileToken,
  type Principal,
  type Role,
} from './auth-file.js';
