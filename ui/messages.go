package ui

import (
	"context"
	"errors"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/entra-companion/entra-companion/auth"
	"github.com/entra-companion/entra-companion/config"
	"github.com/entra-companion/entra-companion/graph/profile"
)

// problem is an error told as sentences a user can act on, with the action that fixes it when
// there is one.
type problem struct {
	// Text is what happened and what to do.
	Text string
	// SignIn is set when signing in again fixes it: the account to sign in.
	SignIn *auth.Account
	// Cancelled is set when the user cancelled: nothing went wrong.
	Cancelled bool
}

// explain turns err into a problem. acc is the account the work was for, if known.
func explain(err error, acc *auth.Account) problem {
	who := "The account"
	whose := "The account's"
	if acc != nil {
		who = firstName(*acc)
		whose = possessive(who)
	}
	var consent *profile.ConsentError
	var cfgErr *config.Error
	switch {
	case err == nil:
		return problem{}
	case errors.Is(err, auth.ErrCancelled), errors.Is(err, context.Canceled):
		return problem{Text: "Cancelled.", Cancelled: true}
	case errors.Is(err, auth.ErrNeedsSignIn):
		p := problem{Text: whose + " sign-in has expired. Sign in again."}
		if acc != nil {
			a := *acc
			p.SignIn = &a
		}
		return p
	case errors.Is(err, context.DeadlineExceeded):
		return problem{Text: "This took too long and was stopped. Check your network connection and try again."}
	case errors.Is(err, auth.ErrNoKeychain):
		return problem{Text: "No keychain is available, so tokens are kept in memory only until you quit. " +
			"Install or start a Secret Service (such as GNOME Keyring) to stay signed in."}
	case errors.Is(err, auth.ErrKeychainTimeout):
		return problem{Text: "The keychain did not answer. Unlock it (look for a password prompt) and try again."}
	case errors.Is(err, auth.ErrUnavailable):
		return problem{Text: "Microsoft's sign-in service could not be reached. Check your network connection and try again."}
	case errors.Is(err, auth.ErrUnknownAccount):
		return problem{Text: who + " is no longer signed in. Choose another account or add it again."}
	case errors.Is(err, auth.ErrNoAccount):
		return problem{Text: "No account is signed in. Add an account first."}
	case errors.As(err, &consent):
		return problem{Text: "The token lacks the " + consent.Permission + " permission. " +
			"Ask an admin to grant consent, or sign in again with that scope."}
	case errors.As(err, &cfgErr):
		return problem{Text: "The settings are not valid: " + sentence(cfgErr.Msg)}
	}
	return problem{Text: "Something went wrong: " + sentence(err.Error())}
}

// firstName is the first word of the account's display name, else its username.
func firstName(a auth.Account) string {
	if f := strings.Fields(a.Name); len(f) > 0 {
		return f[0]
	}
	if a.Username != "" {
		return a.Username
	}
	return "The account"
}

// possessive is "Adele's" ("James'" for a name ending in s).
func possessive(name string) string {
	if strings.HasSuffix(name, "s") {
		return name + "'"
	}
	return name + "'s"
}

// sentence capitalises s and ends it with a full stop.
func sentence(s string) string {
	s = strings.TrimSpace(s)
	if s == "" {
		return ""
	}
	r, n := utf8.DecodeRuneInString(s)
	s = string(unicode.ToUpper(r)) + s[n:]
	if !strings.HasSuffix(s, ".") && !strings.HasSuffix(s, "!") && !strings.HasSuffix(s, "?") {
		s += "."
	}
	return s
}
