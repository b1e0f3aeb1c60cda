/** Certificates and identities for mutual TLS (see `certs.ts`). */
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
