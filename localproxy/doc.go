// Package localproxy is the loopback reverse proxy of Entra Companion: local tools call
// http://127.0.0.1:PORT/<prefix>/... and the proxy forwards the request to the route's
// upstream with a fresh access token of the right account attached.
//
// Each route maps a path prefix to an upstream base URL and an auth mode:
//
//   - bearer: an Entra access token for the route's scopes goes out as
//     "Authorization: Bearer <token>";
//   - strapi: a Microsoft Graph token is exchanged once at the upstream's
//     /api/auth/microsoft/callback for a Strapi users-permissions JWT, which is cached per
//     account until shortly before it expires and sent as the bearer token;
//   - none: nothing is attached (the route only gets the guards).
//
// The proxy is built on [httputil.ReverseProxy] with Rewrite. Tokens are fetched in the
// transport's RoundTrip, so a failure (the account must sign in again, the token service is
// unreachable) reaches the ErrorHandler, which answers JSON naming the route and the account.
// An upstream 401 is retried once with a fresh token (or with the claims of a CAE challenge)
// when the request can be replayed.
//
// Guards, in order: the request target must be origin-form (no absolute-form, no CONNECT); the
// Host header must be a loopback name with the listening port (DNS rebinding); a request with
// an Origin must come from an allowed origin; Sec-Fetch-Site: cross-site is refused unless the
// Origin is explicitly allowed; with a client key configured every request but a CORS
// preflight must carry X-Entra-Proxy-Key; the cleaned path must stay inside a configured
// prefix. Incoming Authorization, Cookie, Proxy-Authorization, X-Entra-Proxy-Key and
// X-Entra-Account headers never reach an upstream.
//
// Tokens never appear in the access log, the live request log, error answers or the status
// page at /_companion/status.
package localproxy
