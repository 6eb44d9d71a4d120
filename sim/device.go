package sim

import (
	"crypto/rand"
	"crypto/subtle"
	"errors"
	"fmt"
	"math/big"
	"net/http"
	"net/url"
	"strings"
	"time"
)

type deviceStatus int

const (
	devicePending deviceStatus = iota
	deviceApproved
	deviceDeclined
	deviceRedeemed
)

// deviceFlow is one device code sign-in, stored under the device code's hash and its user code.
type deviceFlow struct {
	userCode   string
	client     *clientReg
	at         authorityTenant
	scopeRaw   string
	scopes     scopeSet
	claims     string
	expires    time.Time // sim clock
	interval   time.Duration
	lastPoll   time.Time // real clock
	status     deviceStatus
	user       *User
	sessionSeq uint64
	sid        string
	authTime   time.Time
}

const userCodeAlphabet = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"

func newUserCode() string {
	b := make([]byte, 9)
	for i := range b {
		n, _ := rand.Int(rand.Reader, big.NewInt(int64(len(userCodeAlphabet))))
		b[i] = userCodeAlphabet[n.Int64()]
	}
	return string(b)
}

func normalizeUserCode(c string) string {
	c = strings.ToUpper(strings.TrimSpace(c))
	return strings.NewReplacer("-", "", " ", "").Replace(c)
}

func (s *Server) handleDeviceCode(w http.ResponseWriter, r *http.Request, seg string) {
	at, ok := s.postEndpoint(w, r, seg)
	if !ok {
		return
	}
	f := r.PostForm
	clientID := f.Get("client_id")
	if clientID == "" {
		s.writeEntraError(w, r, missingParam("client_id"))
		return
	}
	c := s.dir.client(clientID)
	if c == nil {
		s.writeEntraError(w, r, s.unknownClient(clientID, at))
		return
	}
	if c.Kind != KindPublic {
		s.writeEntraError(w, r, entraErr{status: http.StatusUnauthorized, code: "invalid_client", aadsts: 7000218,
			msg: "The request body must contain the following parameter: 'client_assertion' or 'client_secret'."})
		return
	}
	scopeRaw := f.Get("scope")
	if strings.TrimSpace(scopeRaw) == "" {
		s.writeEntraError(w, r, missingParam("scope"))
		return
	}
	ss, e := s.parseScopes(scopeRaw, at.t)
	if e != nil {
		s.writeEntraError(w, r, *e)
		return
	}
	if _, e := parseClaimsParam(f.Get("claims")); e != nil {
		s.writeEntraError(w, r, *e)
		return
	}
	deviceCode := "DAQABIQEAAAB" + randomString(120)
	fl := &deviceFlow{
		client: c, at: at, scopeRaw: scopeRaw, scopes: ss, claims: f.Get("claims"),
		expires: s.now().Add(s.opts.DeviceCodeLifetime), interval: s.opts.DeviceCodeInterval, lastPoll: time.Now(),
	}
	s.mu.Lock()
	now := s.now()
	for k, d := range s.devices {
		if now.After(d.expires.Add(time.Hour)) {
			delete(s.devices, k)
			delete(s.userCodes, d.userCode)
		}
	}
	for {
		fl.userCode = newUserCode()
		if s.userCodes[fl.userCode] == nil {
			break
		}
	}
	s.devices[hashSecret(deviceCode)] = fl
	s.userCodes[fl.userCode] = fl
	s.mu.Unlock()
	verify := s.pagesBase() + "/devicelogin"
	interval := int((s.opts.DeviceCodeInterval + time.Second - 1) / time.Second)
	writeJSON(w, http.StatusOK, map[string]any{
		"user_code":        fl.userCode,
		"device_code":      deviceCode,
		"verification_uri": verify,
		"expires_in":       int(s.opts.DeviceCodeLifetime / time.Second),
		"interval":         interval,
		"message":          fmt.Sprintf("To sign in, use a web browser to open the page %s and enter the code %s to authenticate.", verify, fl.userCode),
	})
}

func (s *Server) grantDeviceCode(f url.Values, at authorityTenant, c *clientReg, acr string) (map[string]any, *entraErr) {
	dc := f.Get("device_code")
	if dc == "" {
		e := missingParam("device_code")
		return nil, &e
	}
	s.mu.Lock()
	fl := s.devices[hashSecret(dc)]
	fail := func(e *entraErr) (map[string]any, *entraErr) {
		s.mu.Unlock()
		return nil, e
	}
	switch {
	case fl == nil:
		return fail(&entraErr{code: "invalid_grant", aadsts: 9002313, msg: "Invalid request. Request is malformed or invalid. The provided value for the input parameter 'device_code' is not valid."})
	case fl.client.ID != c.ID:
		return fail(&entraErr{code: "invalid_grant", aadsts: 70000, msg: "The provided grant is invalid or malformed. The device code was issued to a different client."})
	case !strings.EqualFold(fl.at.name(), at.name()):
		return fail(&entraErr{code: "invalid_grant", aadsts: 70000, msg: "The provided grant is invalid or malformed. The device code was issued for a different tenant."})
	case fl.status == deviceRedeemed:
		return fail(&entraErr{code: "invalid_grant", aadsts: 70000, msg: "The provided grant is invalid or malformed. The device code was already redeemed."})
	case fl.status == deviceDeclined:
		return fail(&entraErr{code: "authorization_declined", aadsts: 70000, msg: "The user declined the authorization request."})
	case s.now().After(fl.expires):
		return fail(&entraErr{code: "expired_token", aadsts: 70020, msg: "The provided value for the input parameter 'device_code' is not valid. This device code has expired."})
	case fl.status == devicePending:
		real := time.Now()
		tooFast := real.Sub(fl.lastPoll) < fl.interval
		fl.lastPoll = real
		if tooFast {
			return fail(&entraErr{code: "slow_down", aadsts: 70016, msg: fmt.Sprintf(
				"OAuth 2.0 device flow error. Authorization is pending and the client polls too often: wait %s between polls.", fl.interval)})
		}
		return fail(&entraErr{code: "authorization_pending", aadsts: 70016, msg: "OAuth 2.0 device flow error. Authorization is pending. Continue polling."})
	}
	home := s.dir.home(fl.user)
	if e := s.checkConsentLocked(c, home.HomeObjectID, fl.scopes); e != nil {
		return fail(e)
	}
	fl.status = deviceRedeemed
	s.mu.Unlock()
	return s.userTokens(userGrant{
		client: c, acr: acr, user: fl.user, scopes: fl.scopes, scopeRaw: fl.scopeRaw, claims: fl.claims,
		clientInfo: f.Get("client_info") == "1", sessionSeq: fl.sessionSeq, sid: fl.sid, authTime: fl.authTime,
	})
}

var (
	errUnknownUserCode = errors.New("unknown device code")
	errCodeExpired     = errors.New("the device code has expired")
	errCodeUsed        = errors.New("the device code was already used")
)

// deviceFlowByUserCode returns the pending flow of a user code. s.mu must be held.
func (s *Server) deviceFlowByUserCodeLocked(code string) (*deviceFlow, error) {
	fl := s.userCodes[normalizeUserCode(code)]
	switch {
	case fl == nil:
		return nil, errUnknownUserCode
	case fl.status != devicePending:
		return nil, errCodeUsed
	case s.now().After(fl.expires):
		return nil, errCodeExpired
	}
	return fl, nil
}

// approveDevice signs the person in for a device code. password is checked unless trusted.
func (s *Server) approveDevice(code, login, password string, trusted bool) (*deviceFlow, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	fl, err := s.deviceFlowByUserCodeLocked(code)
	if err != nil {
		return nil, err
	}
	u := s.dir.signIn(login, fl.at.t)
	if u == nil {
		where := "the directory"
		if fl.at.t != nil {
			where = "the " + fl.at.t.Domain + " directory"
		}
		return fl, fmt.Errorf("the user account %s does not exist in %s (AADSTS50034)", login, where)
	}
	home := s.dir.home(u)
	if !trusted && subtle.ConstantTimeCompare([]byte(password), []byte(home.Password)) != 1 {
		return fl, errors.New("error validating credentials due to invalid username or password (AADSTS50126)")
	}
	delete(s.mfa, home.HomeObjectID)
	s.recordConsentLocked(fl.client, home.HomeObjectID, fl.scopes)
	fl.sessionSeq, fl.sid, fl.authTime = s.newSessionLocked()
	fl.user = u
	fl.status = deviceApproved
	return fl, nil
}

// ApproveDeviceCode approves a pending device code as the user, like typing the code on the
// device login page and signing in: the next poll gets tokens.
func (s *Server) ApproveDeviceCode(userCode, upn string) error {
	if _, err := s.approveDevice(userCode, upn, "", true); err != nil {
		return fmt.Errorf("approving device code %s as %s: %w", userCode, upn, err)
	}
	return nil
}

// DenyDeviceCode declines a pending device code: the next poll answers authorization_declined.
func (s *Server) DenyDeviceCode(userCode string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	fl, err := s.deviceFlowByUserCodeLocked(userCode)
	if err != nil {
		return fmt.Errorf("denying device code %s: %w", userCode, err)
	}
	fl.status = deviceDeclined
	return nil
}

func (s *Server) handleDeviceLogin(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store, no-cache")
	if r.Method == http.MethodGet {
		_ = deviceCodePage.Execute(w, map[string]any{"Code": r.URL.Query().Get("otc")})
		return
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "GET, POST")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 1<<16)
	if err := r.ParseForm(); err != nil {
		http.Error(w, "bad form", http.StatusBadRequest)
		return
	}
	f := r.PostForm
	code := f.Get("otc")
	s.mu.Lock()
	fl, err := s.deviceFlowByUserCodeLocked(code)
	s.mu.Unlock()
	if err != nil {
		w.WriteHeader(http.StatusBadRequest)
		_ = deviceCodePage.Execute(w, map[string]any{"Code": code, "Error": "That code didn't work. Check the code and try again."})
		return
	}
	tenantName := "Work or school account"
	if fl.at.t != nil {
		tenantName = fl.at.t.DisplayName
	}
	signIn := func(errMsg string) {
		_ = deviceSignInPage.Execute(w, map[string]any{
			"Code": fl.userCode, "App": fl.client.Name, "Tenant": tenantName, "Login": f.Get("login"),
			"Error": errMsg, "Choices": s.loginChoices(fl.at.t),
		})
	}
	switch f.Get("action") {
	case "deny":
		if err := s.DenyDeviceCode(code); err != nil {
			signIn(err.Error())
			return
		}
		_ = deviceDonePage.Execute(w, map[string]any{"Result": "declined", "Title": "Sign in canceled",
			"Message": "You have declined to sign in to " + fl.client.Name + " on your device. You may now close this window."})
	case "approve":
		if _, err := s.approveDevice(code, strings.TrimSpace(f.Get("login")), f.Get("passwd"), false); err != nil {
			signIn(err.Error())
			return
		}
		_ = deviceDonePage.Execute(w, map[string]any{"Result": "approved", "Title": fl.client.Name,
			"Message": "You have signed in to the " + fl.client.Name + " application on your device. You may now close this window."})
	default:
		signIn("")
	}
}
