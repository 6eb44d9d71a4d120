package sim

import (
	"fmt"
	"math"
	"net/http"
	"strconv"
	"time"
)

// Endpoint names an endpoint of the sim for faults and counters.
type Endpoint string

// Endpoints of the authority.
const (
	EndpointDiscovery   Endpoint = "discovery"   // /{tenant}/v2.0/.well-known/openid-configuration
	EndpointJWKS        Endpoint = "jwks"        // /{tenant}/discovery/v2.0/keys
	EndpointAuthorize   Endpoint = "authorize"   // /{tenant}/oauth2/v2.0/authorize
	EndpointLogin       Endpoint = "login"       // POST /{tenant}/login (the login form)
	EndpointToken       Endpoint = "token"       // /{tenant}/oauth2/v2.0/token
	EndpointDeviceCode  Endpoint = "devicecode"  // /{tenant}/oauth2/v2.0/devicecode
	EndpointDeviceLogin Endpoint = "devicelogin" // /devicelogin (the code entry page)
	EndpointLogout      Endpoint = "logout"      // /{tenant}/oauth2/v2.0/logout
)

// Endpoints of Graph.
const (
	EndpointGraphMe           Endpoint = "graph.me"           // /me
	EndpointGraphUsers        Endpoint = "graph.users"        // /users/{id}
	EndpointGraphPhoto        Endpoint = "graph.photo"        // /me/photo, /me/photo/$value
	EndpointGraphOrganization Endpoint = "graph.organization" // /organization
	EndpointGraphMemberOf     Endpoint = "graph.memberof"     // /me/transitiveMemberOf, /me/memberOf, /me/getMemberObjects
	EndpointGraphBatch        Endpoint = "graph.batch"        // /$batch
	EndpointGraphUserInfo     Endpoint = "graph.userinfo"     // /oidc/userinfo
)

// Endpoints of the CMS.
const (
	EndpointCMSCallback Endpoint = "cms.callback" // /api/auth/microsoft/callback
	EndpointCMSArticles Endpoint = "cms.articles" // /api/articles, /api/articles/{id}
	EndpointCMSUsersMe  Endpoint = "cms.usersme"  // /api/users/me
	EndpointCMSStream   Endpoint = "cms.stream"   // /api/stream
	EndpointCMSDownload Endpoint = "cms.download" // /api/download
	EndpointCMSEcho     Endpoint = "cms.echo"     // /api/echo
)

// errorFamily is how an endpoint shapes its errors.
type errorFamily int

const (
	familyEntra errorFamily = iota // Entra JSON
	familyPage                     // HTML page
	familyGraph                    // Graph JSON
	familyCMS                      // Strapi JSON
)

func (e Endpoint) family() errorFamily {
	switch e {
	case EndpointAuthorize, EndpointLogin, EndpointDeviceLogin, EndpointLogout:
		return familyPage
	case EndpointGraphMe, EndpointGraphUsers, EndpointGraphPhoto, EndpointGraphOrganization,
		EndpointGraphMemberOf, EndpointGraphBatch, EndpointGraphUserInfo:
		return familyGraph
	case EndpointCMSCallback, EndpointCMSArticles, EndpointCMSUsersMe, EndpointCMSStream,
		EndpointCMSDownload, EndpointCMSEcho:
		return familyCMS
	}
	return familyEntra
}

// Fault makes the next calls of an endpoint fail. Faults are checked before normal handling,
// in the order they were injected.
type Fault struct {
	// Count is how many next calls are affected (0 = 1).
	Count int
	// Status is the HTTP status to answer (e.g. 500, 503, 429); 0 = 400 when Error is set,
	// 401 for Error "invalid_client", else 500.
	Status int
	// Error is the OAuth error code for authority endpoints (e.g. "invalid_grant",
	// "interaction_required", "temporarily_unavailable"), the error code for Graph and the
	// error name for the CMS.
	Error string
	// RetryAfter sets Retry-After (whole seconds, rounded up).
	RetryAfter time.Duration
	// Delay sleeps before answering; alone (no Status, Error, Malformed or Hang) it only slows
	// the normal answer down.
	Delay time.Duration
	// Hang never answers until the client gives up (request context done), the listener
	// stops or the server closes.
	Hang bool
	// Malformed answers 200 with a truncated JSON body.
	Malformed bool
	// Grant limits a token-endpoint fault to this grant_type ("" = any).
	Grant string
}

type faultState struct {
	f    Fault
	left int
}

// InjectFault makes the next f.Count calls of e fail as f says.
func (s *Server) InjectFault(e Endpoint, f Fault) {
	n := f.Count
	if n <= 0 {
		n = 1
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults[e] = append(s.faults[e], &faultState{f: f, left: n})
}

// ClearFaults removes every pending fault.
func (s *Server) ClearFaults() {
	s.mu.Lock()
	defer s.mu.Unlock()
	clear(s.faults)
}

// takeFault consumes one call of the first matching fault of e.
func (s *Server) takeFault(e Endpoint, grant string) (Fault, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	list := s.faults[e]
	for i, fs := range list {
		if fs.f.Grant != "" && fs.f.Grant != grant {
			continue
		}
		fs.left--
		if fs.left <= 0 {
			s.faults[e] = append(list[:i:i], list[i+1:]...)
		}
		return fs.f, true
	}
	return Fault{}, false
}

// applyFault counts the call and plays a pending fault; true means the response is written.
func (s *Server) applyFault(e Endpoint, w http.ResponseWriter, r *http.Request, grant string) bool {
	f, ok := s.takeFault(e, grant)
	if !ok {
		return false
	}
	stop := stopOf(r)
	if f.Delay > 0 {
		t := time.NewTimer(f.Delay)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			return true
		case <-stop:
			t.Stop()
			return true
		}
	}
	if f.Hang {
		select {
		case <-r.Context().Done():
		case <-stop:
		}
		return true
	}
	if f.Status == 0 && f.Error == "" && !f.Malformed {
		return false // only slow
	}
	if f.RetryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(f.RetryAfter.Seconds()))))
	}
	fam := e.family()
	if f.Malformed {
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		w.WriteHeader(http.StatusOK)
		switch fam {
		case familyGraph:
			_, _ = w.Write([]byte(`{"@odata.context":"` + s.GraphURL() + `/$metadata#users/$entity","displayName":"Ad`))
		case familyCMS:
			_, _ = w.Write([]byte(`{"data":[{"id":1,"documentId":"`))
		default:
			_, _ = w.Write([]byte(`{"token_type":"Bearer","scope":"User.Read","expires_in":37`))
		}
		return true
	}
	status := f.Status
	if status == 0 {
		switch {
		case f.Error == "invalid_client":
			status = http.StatusUnauthorized
		case f.Error != "":
			status = http.StatusBadRequest
		default:
			status = http.StatusInternalServerError
		}
	}
	switch fam {
	case familyGraph:
		code, msg := graphCodeFor(status)
		if f.Error != "" {
			code = f.Error
		}
		s.writeGraphError(w, r, status, code, msg)
	case familyCMS:
		name, msg := strapiNameFor(status)
		if f.Error != "" {
			name = f.Error
		}
		writeStrapiError(w, status, name, msg)
	case familyPage:
		s.writeErrorPage(w, r, status, entraErr{code: f.Error, aadsts: 90033, msg: "A transient error has occurred. Please try again."})
	default:
		s.writeEntraError(w, r, faultEntraError(status, f.Error))
	}
	return true
}

func faultEntraError(status int, code string) entraErr {
	e := entraErr{status: status, code: code}
	switch code {
	case "invalid_grant":
		e.aadsts, e.msg = 70000, "The provided grant is invalid or malformed."
	case "interaction_required":
		e.aadsts, e.msg, e.suberror = 50076, "Due to a configuration change made by your administrator, or because you moved to a new location, you must use multi-factor authentication to access the resource.", "basic_action"
	case "invalid_client":
		e.aadsts, e.msg = 7000215, "Invalid client secret provided."
	case "unauthorized_client":
		e.aadsts, e.msg = 700016, "Application was not found in the directory."
	case "consent_required":
		e.code, e.suberror = "invalid_grant", "consent_required"
		e.aadsts, e.msg = 65001, "The user or administrator has not consented to use the application. Send an interactive authorization request for this user and resource."
	case "", "temporarily_unavailable", "server_error":
		if e.code == "" {
			e.code = "temporarily_unavailable"
			if status == http.StatusInternalServerError {
				e.code = "server_error"
			}
		}
		e.aadsts, e.msg = 90033, "A transient error has occurred. Please try again."
	default:
		e.aadsts, e.msg = 90000, fmt.Sprintf("The request failed with %s.", code)
	}
	return e
}

func graphCodeFor(status int) (code, msg string) {
	switch status {
	case http.StatusTooManyRequests:
		return "TooManyRequests", "Too many requests."
	case http.StatusServiceUnavailable:
		return "serviceNotAvailable", "Service unavailable."
	case http.StatusGatewayTimeout:
		return "UnknownError", "Gateway timeout."
	case http.StatusUnauthorized:
		return "InvalidAuthenticationToken", "Access token validation failure."
	case http.StatusForbidden:
		return "Authorization_RequestDenied", "Insufficient privileges to complete the operation."
	case http.StatusNotFound:
		return "Request_ResourceNotFound", "Resource does not exist."
	case http.StatusBadRequest:
		return "BadRequest", "Bad request."
	}
	return "generalException", "General exception while processing."
}

func strapiNameFor(status int) (name, msg string) {
	switch status {
	case http.StatusBadRequest:
		return "BadRequestError", "Bad Request"
	case http.StatusUnauthorized:
		return "UnauthorizedError", "Missing or invalid credentials"
	case http.StatusForbidden:
		return "ForbiddenError", "Forbidden"
	case http.StatusNotFound:
		return "NotFoundError", "Not Found"
	case http.StatusTooManyRequests:
		return "RateLimitError", "Too many requests, please try again later."
	case http.StatusServiceUnavailable:
		return "ServiceUnavailableError", "Service Unavailable"
	case http.StatusBadGateway:
		return "BadGatewayError", "Bad Gateway"
	}
	return "InternalServerError", "Internal Server Error"
}

// counters

func (s *Server) count(e Endpoint) {
	s.cmu.Lock()
	s.counts[e]++
	s.cmu.Unlock()
}

func (s *Server) countGrant(grant string) {
	s.cmu.Lock()
	s.grants[grant]++
	s.cmu.Unlock()
}

func (s *Server) reject(e Endpoint) {
	s.cmu.Lock()
	s.rejected[e]++
	s.cmu.Unlock()
}

// Count returns how many calls of e the sim has seen, faulted ones included.
func (s *Server) Count(e Endpoint) int {
	s.cmu.Lock()
	defer s.cmu.Unlock()
	return s.counts[e]
}

// GrantCount returns how many successful token responses the sim gave for a grant_type
// ("authorization_code", "refresh_token", "device_code", "client_credentials").
func (s *Server) GrantCount(grant string) int {
	s.cmu.Lock()
	defer s.cmu.Unlock()
	return s.grants[grant]
}

// Rejected returns how many requests to a Graph or CMS endpoint were refused for a missing
// or invalid token (including CAE challenges).
func (s *Server) Rejected(e Endpoint) int {
	s.cmu.Lock()
	defer s.cmu.Unlock()
	return s.rejected[e]
}

// ResetCounts zeroes every counter.
func (s *Server) ResetCounts() {
	s.cmu.Lock()
	defer s.cmu.Unlock()
	clear(s.counts)
	clear(s.grants)
	clear(s.rejected)
}
