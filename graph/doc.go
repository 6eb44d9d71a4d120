// Package graph reads who an account is from Microsoft Graph: profile, photo, organization,
// groups and directory roles, returned as the project's own types of package profile.
//
// It is the only package that links the Microsoft Graph SDK (msgraph-sdk-go), which is large:
// everything else (the UI in particular) depends on package profile and on small interfaces.
//
// A Client holds one SDK client per account, built once with the account's
// azcore.TokenCredential from Credentials. A Snapshot is read in as few round trips as
// possible: /me, /organization and the first page of /me/transitiveMemberOf in one $batch
// request, the photo beside it, further membership pages with a page iterator. Snapshots are
// cached per account; Cached never blocks, so the UI can draw at once and Refresh in the
// background. Concurrent refreshes of one account share one read.
//
// Graph's answers become typed errors: ErrUnauthorized, ErrThrottled and ErrUnavailable (test
// with errors.Is; *Error carries the status, Graph's error code and message) and
// *profile.ConsentError for a missing permission. A 403 on group memberships is not fatal: the
// Snapshot then holds the ids of the id token's groups claim and says why in GroupsErr.
// 429 and 503 answers are retried after their Retry-After (bounded in count and in wait). No
// token ever appears in an error.
package graph
