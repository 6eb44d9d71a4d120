package ui

import "github.com/entra-companion/entra-companion/auth"

// The broker is the UI's Accounts as is; cmd passes it without an adapter.
var _ Accounts = (*auth.Broker)(nil)
