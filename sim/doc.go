// Package sim is a simulated Microsoft cloud for tests and demos: an Entra ID v2.0 authority,
// Microsoft Graph v1.0 and a Strapi-like CMS, each on its own loopback listener.
//
// A Server is started with New (or Start in tests) and serves:
//
//   - the authority on AuthorityHost (HTTPS, its own CA): per-tenant OpenID discovery, JWKS,
//     the authorize endpoint with a small login page and form_post/query responses, the
//     token endpoint (authorization_code with PKCE, refresh_token with rotation, device_code,
//     client_credentials with a secret or a certificate assertion) and the device code
//     endpoint with its /devicelogin page;
//   - Graph on GraphURL (HTTPS): /me, /users/{id}, photos, /organization,
//     /me/transitiveMemberOf (paged), /me/getMemberObjects, $batch and /oidc/userinfo;
//   - the CMS on CMSURL (HTTPS): /api/auth/microsoft/callback, /api/articles, /api/users/me,
//     /api/stream, /api/download and /api/echo;
//   - optionally the pages a person's browser opens on a plain-HTTP PagesURL.
//
// The directory is fixed and deterministic (see the Tenant*, User* and *ClientID constants):
// two tenants, four members and one guest, a public, a confidential and a resource (CMS)
// application. Microsoft Graph Command Line Tools (GraphCLIClientID) is accepted as a second
// public client.
//
// # How close to Entra
//
// The sim validates what Entra validates and fails the way Entra fails: token-endpoint errors
// carry Entra's body (error, error_description with AADSTS code, Trace ID, Correlation ID and
// Timestamp, error_codes, timestamp, trace_id, correlation_id, error_uri) and status (400, or
// 401 for invalid_client); Graph errors carry Graph's {"error":{"code","message","innerError"}}
// body; CMS errors carry Strapi 5's {"data":null,"error":{...}} body. Where the sim chooses a
// policy Entra leaves to configuration, it says so:
//
//   - Every public client must use PKCE with S256; redirect URIs of public clients are loopback
//     http://localhost or http://127.0.0.1 with any port and path.
//   - Refresh tokens rotate: each redemption returns a new one and invalidates the presented
//     one (a replay is invalid_grant AADSTS70000). Entra itself does not invalidate them, but
//     clients must survive it either way. A refresh token belongs to the user's home account
//     and the client, and is accepted at any tenant the user exists in (member or guest), as
//     Entra's are.
//   - Options.RefreshTokenReuseInterval relaxes the rotation the way providers that rotate do
//     (Okta's grace period, Auth0's reuse interval): within the interval after its first
//     redemption, the immediately previous refresh token of a grant (the one whose
//     replacement has not been redeemed yet) is accepted once more, and yields a new token.
//     A client killed after the authority rotated its token but before it stored the new one
//     then stays signed in. Expiry, revocation and MFA still apply. The default, 0, is strict
//     single use.
//   - Graph reads request bodies sent with Content-Encoding: gzip (msgraph-sdk-go compresses
//     $batch and other JSON bodies), as Microsoft Graph does; other codings get 415.
//   - Consent: each client has admin-granted delegated permissions (".default" yields those);
//     an explicitly named scope outside them needs an interactive or device-code sign-in first
//     (the sign-in records the user's consent), otherwise the token endpoint answers
//     invalid_grant AADSTS65001 with suberror consent_required.
//   - Access-token scp holds exactly the requested scopes (or the consented ones for
//     ".default"); the token response's scope echoes every requested scope in the caller's
//     spelling, which is what MSAL needs to cache the token.
//   - Graph access tokens have aud "https://graph.microsoft.com" and ver "2.0"; CMS access tokens
//     are v2 tokens whose aud is CMSClientID (the CMS accepts CMSClientID and CMSAudience).
//   - Resource servers (Graph, CMS) validate exp and nbf with no clock skew: stricter than
//     Microsoft's five minutes, so whatever passes here passes there.
//   - Token lifetimes, codes and revocations use Options.Now; TLS, client assertions and the
//     device-code polling rate use the real clock, like the other side of the wire does.
//   - Groups: id tokens and CMS access tokens carry a groups claim (all group kinds) and wids
//     (directory role template ids); at 200 groups or more they carry _claim_names and
//     _claim_sources pointing at Graph's getMemberObjects instead, as Entra does.
//   - Guests: a guest signs in at the resource tenant with its home UPN; tokens carry the guest
//     object (tid, oid) plus idp (the home tenant's issuer) and home_oid (a sim extension);
//     client_info carries the home oid and tid, so MSAL's home account id is the home one.
//
// Faults (InjectFault), revocations (RevokeRefreshTokens, RequireMFA, RevokeAccessTokens), key
// rotation and counters (Count, GrantCount, Rejected) let tests drive failure paths. The sim
// never logs or keeps tokens: codes and refresh tokens are stored as SHA-256 hashes, access
// tokens only as their uti claim.
//
// All methods are safe for concurrent use.
package sim
