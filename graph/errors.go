package graph

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"

	abs "github.com/microsoft/kiota-abstractions-go"
	"github.com/microsoftgraph/msgraph-sdk-go/models/odataerrors"

	"github.com/entra-companion/entra-companion/graph/profile"
)

// Errors a caller can branch on with errors.Is.
var (
	// ErrUnauthorized: Graph refused the token (401) even after the credential's own retry
	// (e.g. a claims challenge); the account probably has to sign in again.
	ErrUnauthorized = errors.New("graph refused the access token")
	// ErrThrottled: Graph kept answering 429 Too Many Requests after the allowed retries.
	ErrThrottled = errors.New("graph is throttling requests")
	// ErrUnavailable: Graph could not be reached or answered with a server error (5xx).
	ErrUnavailable = errors.New("graph is unavailable")
)

// Error is a failed Graph call. errors.Is(err, ErrUnauthorized / ErrThrottled / ErrUnavailable)
// tells the kind; the fields tell the details. It never holds a token.
type Error struct {
	// Op is what was being read, e.g. "reading the profile".
	Op string
	// Status is the HTTP status, 0 when no answer came.
	Status int
	// Code and Message are Graph's error code and message, if it sent them.
	Code, Message string
	// RequestID is Graph's request-id header, useful when asking Microsoft support.
	RequestID string
	// RetryAfter is the last Retry-After Graph sent (0 if none).
	RetryAfter string
	// Kind is ErrUnauthorized, ErrThrottled, ErrUnavailable or nil.
	Kind error
	// Err is the underlying transport error, if any.
	Err error
}

// Error says what was read, what Graph answered and, where it helps, what to do.
func (e *Error) Error() string {
	msg := e.Op + ": "
	switch {
	case e.Status == 0 && e.Err != nil:
		msg += "Microsoft Graph could not be reached: " + e.Err.Error()
	case e.Status == 0:
		msg += "Microsoft Graph could not be reached"
	default:
		msg += "Microsoft Graph answered " + strconv.Itoa(e.Status) + " " + http.StatusText(e.Status)
		if e.Code != "" || e.Message != "" {
			msg += " (" + e.Code
			if e.Code != "" && e.Message != "" {
				msg += ": "
			}
			msg += e.Message + ")"
		}
		switch e.Kind {
		case ErrUnauthorized:
			msg += "; sign in to the account again"
		case ErrThrottled:
			msg += "; try again later"
		}
	}
	return msg
}

// Unwrap returns the kind and the transport error.
func (e *Error) Unwrap() []error {
	var out []error
	if e.Kind != nil {
		out = append(out, e.Kind)
	}
	if e.Err != nil {
		out = append(out, e.Err)
	}
	return out
}

// credError marks an error of the account's credential (no token could be had), so it is not
// taken for a Graph failure.
type credError struct{ err error }

func (e *credError) Error() string { return e.err.Error() }
func (e *credError) Unwrap() error { return e.err }

// permissions needed per read, for ConsentError.
const (
	permUser        = "User.Read"
	permGroupMember = "GroupMember.Read.All"
)

// mapError turns an SDK error into the package's errors. rec holds what the transport saw of
// the last response of the call.
func mapError(ctx context.Context, op, permission string, err error, rec *recorder) error {
	if err == nil {
		return nil
	}
	if ce := (*credError)(nil); errors.As(err, &ce) {
		return fmt.Errorf("%s: getting a token: %w", op, ce.err)
	}
	if ctx.Err() != nil {
		return fmt.Errorf("%s: %w", op, ctx.Err())
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%s: %w", op, err)
	}
	e := &Error{Op: op}
	var apiErr abs.ApiErrorable
	if errors.As(err, &apiErr) {
		e.Status = apiErr.GetStatusCode()
		if h := apiErr.GetResponseHeaders(); h != nil {
			e.RequestID = first(h.Get("request-id"))
			e.RetryAfter = first(h.Get("Retry-After"))
		}
	}
	var odata *odataerrors.ODataError
	if errors.As(err, &odata) {
		if me := odata.GetErrorEscaped(); me != nil {
			e.Code, e.Message = deref(me.GetCode()), deref(me.GetMessage())
		}
	}
	if e.Status == 0 && rec != nil {
		// The SDK lost the status (e.g. an error body it could not parse): use what the
		// transport saw.
		if st := rec.last(); st.status >= 400 {
			e.Status, e.RequestID, e.RetryAfter = st.status, st.requestID, st.retryAfter
		}
	}
	if e.Status == 0 {
		// No answer: a network failure. Keep the cause, unless it is the SDK's own error type
		// (whose Error method can panic on an empty body).
		if odata == nil {
			e.Err = err
		}
		e.Kind = ErrUnavailable
		return e
	}
	return classify(e, permission)
}

// classify sets Kind from Status, or returns a *profile.ConsentError for a 403.
func classify(e *Error, permission string) error {
	switch {
	case e.Status == http.StatusUnauthorized:
		e.Kind = ErrUnauthorized
	case e.Status == http.StatusForbidden:
		return &profile.ConsentError{Permission: permission, Op: e.Op}
	case e.Status == http.StatusTooManyRequests:
		e.Kind = ErrThrottled
	case e.Status >= 500:
		e.Kind = ErrUnavailable
	}
	return e
}

func first(v []string) string {
	if len(v) == 0 {
		return ""
	}
	return v[0]
}

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}
