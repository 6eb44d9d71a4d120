// Package auth signs Microsoft Entra ID accounts in and out and hands out fresh access
// tokens.
//
// A Broker holds several accounts — users signed in by browser (authorization code with PKCE
// and a loopback redirect) or device code through MSAL Go's public client, and app-only
// identities through its confidential client — each with its own authority, so the same user
// in two tenants, or as a guest, is two accounts.
//
// Refresh tokens live only in the OS keychain (go-keyring): one item per home account, holding
// that account's slice of MSAL's cache; values larger than the platform allows are split into
// chunks behind a manifest written last, so a crash never leaves a damaged item and a rotated
// refresh token is stored before the old one is dropped. Every keychain call has a timeout. A
// file lock and a write counter in the state directory let the tray app and CLI processes
// share the items: a process reloads before redeeming a refresh token another one rotated.
// Without a keychain the broker says so and keeps tokens in memory only; it never writes them
// to a file.
//
// Access tokens stay in memory. Token answers from a lock-free map on the hot path, renews
// tokens in the background before they expire, shares one refresh among all callers of an
// (account, scopes), retries transient failures while serving the still-valid token, and turns
// invalid_grant and interaction_required into StateNeedsSignIn.
package auth
