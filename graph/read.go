package graph

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	abs "github.com/microsoft/kiota-abstractions-go"
	"github.com/microsoft/kiota-abstractions-go/serialization"
	khttp "github.com/microsoft/kiota-http-go"
	msgraphcore "github.com/microsoftgraph/msgraph-sdk-go-core"
	"github.com/microsoftgraph/msgraph-sdk-go/models"
	"github.com/microsoftgraph/msgraph-sdk-go/organization"
	"github.com/microsoftgraph/msgraph-sdk-go/users"

	"github.com/entra-companion/entra-companion/graph/profile"
)

// What is read, for error messages.
const (
	opProfile      = "reading the profile"
	opPhoto        = "reading the photo"
	opOrganization = "reading the organization"
	opGroups       = "reading group memberships"
	opBatch        = "reading profile, organization and groups in one batch"
)

// $select lists: every field the project's types hold.
var (
	profileSelect = []string{"id", "displayName", "givenName", "surname", "mail", "userPrincipalName",
		"jobTitle", "department", "officeLocation", "mobilePhone", "businessPhones", "preferredLanguage", "userType"}
	orgSelect    = []string{"id", "displayName", "verifiedDomains"}
	groupsSelect = []string{"id", "displayName", "groupTypes", "mailEnabled", "securityEnabled"}
)

// groupsPageSize is asked of transitiveMemberOf; Graph allows up to 999 per page.
const groupsPageSize = 999

func profileRequest() *users.UserItemRequestBuilderGetRequestConfiguration {
	return &users.UserItemRequestBuilderGetRequestConfiguration{
		QueryParameters: &users.UserItemRequestBuilderGetQueryParameters{Select: profileSelect},
	}
}

func orgRequest() *organization.OrganizationRequestBuilderGetRequestConfiguration {
	return &organization.OrganizationRequestBuilderGetRequestConfiguration{
		QueryParameters: &organization.OrganizationRequestBuilderGetQueryParameters{Select: orgSelect},
	}
}

func (c *Client) groupsRequest() *users.ItemTransitiveMemberOfRequestBuilderGetRequestConfiguration {
	top := int32(c.pageSize)
	return &users.ItemTransitiveMemberOfRequestBuilderGetRequestConfiguration{
		QueryParameters: &users.ItemTransitiveMemberOfRequestBuilderGetQueryParameters{Select: groupsSelect, Top: &top},
	}
}

// readSnapshot reads everything: the batch (profile, organization, first groups page) and the
// photo side by side, then the remaining group pages.
func (c *Client) readSnapshot(ctx context.Context, st *accountState, account string) (*profile.Snapshot, error) {
	type photoResult struct {
		p   *profile.Photo
		err error
	}
	photoCh := make(chan photoResult, 1)
	pctx, cancelPhoto := context.WithCancel(ctx)
	defer cancelPhoto()
	go func() {
		p, err := c.readPhoto(pctx, st)
		photoCh <- photoResult{p, err}
	}()

	snap := &profile.Snapshot{AccountID: account}
	b, err := c.readBatch(ctx, st)
	if err != nil {
		return nil, err
	}
	if b.profileErr != nil {
		return nil, b.profileErr
	}
	snap.Profile = b.profile
	snap.Organization, snap.OrganizationErr = b.org, b.orgErr

	switch {
	case b.groupsErr != nil:
		err = b.groupsErr
	default:
		snap.Groups, err = c.readGroups(ctx, st, b.groupsPage)
	}
	if err != nil {
		if ctx.Err() != nil {
			return nil, err
		}
		snap.GroupsErr = err
		if errors.Is(err, profile.ErrConsent) {
			snap.Groups = c.claimGroups(account)
		}
	}
	if snap.Groups == nil {
		snap.Groups = []profile.Group{}
	}

	pr := <-photoCh
	if pr.err != nil && ctx.Err() != nil {
		return nil, pr.err
	}
	snap.Photo, snap.PhotoErr = pr.p, pr.err

	claims, _ := c.creds.IDTokenClaims(account)
	orgTID := ""
	if snap.Organization != nil {
		orgTID = snap.Organization.TenantID
	}
	snap.HomeTenantID = homeTenant(account, claims, orgTID)
	if snap.AccountID == "" {
		snap.AccountID = accountIDFromClaims(claims)
	}
	snap.ReadAt = c.now()
	return snap, nil
}

// batchResult is what the $batch (or its fallback) gave.
type batchResult struct {
	profile    *profile.Profile
	profileErr error
	org        *profile.Organization
	orgErr     error
	groupsPage models.DirectoryObjectCollectionResponseable
	groupsErr  error
}

// readBatch reads /me, /organization and the first transitiveMemberOf page in one $batch
// round trip. Steps that were throttled are redone one by one (within the retry budget); when
// Graph does not take the batch itself, each request is sent on its own.
func (c *Client) readBatch(ctx context.Context, st *accountState) (batchResult, error) {
	var res batchResult
	me := st.sdk.Me()
	meInfo, err1 := me.ToGetRequestInformation(ctx, profileRequest())
	orgInfo, err2 := st.sdk.Organization().ToGetRequestInformation(ctx, orgRequest())
	grInfo, err3 := me.TransitiveMemberOf().ToGetRequestInformation(ctx, c.groupsRequest())
	if err := errors.Join(err1, err2, err3); err != nil {
		return res, fmt.Errorf("%s: building the requests: %w", opBatch, err)
	}
	adapter := st.sdk.GetAdapter()
	batch := msgraphcore.NewBatchRequest(adapter)
	var ids [3]string
	for i, info := range []*abs.RequestInformation{meInfo, orgInfo, grInfo} {
		item, err := batch.AddBatchRequestStep(*info)
		if err != nil {
			return res, fmt.Errorf("%s: %w", opBatch, err)
		}
		ids[i] = deref(item.GetId())
	}

	bctx, rec := withRecorder(ctx)
	// The batch body is a few hundred bytes of GET steps: gzip would cost more than it saves,
	// and not every Graph endpoint reads compressed request bodies (the simulated cloud does
	// not, and answers 400 rather than the 415 that would make the SDK resend it plain).
	noGzip := khttp.NewCompressionOptionsReference(false)
	bctx = context.WithValue(bctx, noGzip.GetKey(), noGzip)
	resp, err := sendBatch(bctx, batch, adapter)
	if err != nil {
		mapped := mapError(bctx, opBatch, permUser, err, rec)
		var ge *Error
		refused := errors.As(mapped, &ge) && ge.Status != 0 && (ge.Kind == nil || ge.Status == http.StatusNotImplemented)
		if code := rec.last().status; ctx.Err() == nil && (refused || code >= 200 && code < 300) {
			// Graph did not take the batch (400, 404, 501…) or its answer could not be read:
			// send the requests one by one.
			return c.readOneByOne(ctx, st), nil
		}
		// Unauthorized, throttled, consent, network, token or context errors: the single
		// requests would fail the same way.
		return res, mapped
	}

	// Steps Graph throttled (or left out) are redone on their own after the longest
	// Retry-After among them; that wait counts against the retry budget of the redone
	// requests, so the whole stays bounded.
	items := make([]msgraphcore.BatchItem, len(ids))
	redo := make([]bool, len(ids))
	var wait time.Duration
	anyRedo := false
	for i, id := range ids {
		item := resp.GetResponseById(id)
		items[i] = item
		if item == nil || item.GetStatus() == nil {
			redo[i], anyRedo = true, true
			continue
		}
		if retriable(int(*item.GetStatus())) {
			redo[i], anyRedo = true, true
			wait = max(wait, retryAfter(header(item.GetHeaders(), "Retry-After"), c.now(), 0))
		}
	}
	rctx := ctx
	if anyRedo && c.retry.max > 0 {
		if err := c.retry.sleep(ctx, wait); err != nil {
			return res, fmt.Errorf("%s: %w", opBatch, err)
		}
		rctx = withRetryBudget(ctx, c.retry.max-1)
	} else if anyRedo {
		redo = make([]bool, len(ids)) // no retries allowed: report the steps' errors
	}

	// Profile.
	switch {
	case redo[0]:
		res.profile, res.profileErr = c.readProfile(rctx, st)
	default:
		if res.profileErr = stepError(opProfile, permUser, items[0]); res.profileErr == nil {
			u, err := parseStep[models.Userable](items[0], models.CreateUserFromDiscriminatorValue)
			if err != nil {
				res.profileErr = fmt.Errorf("%s: %w", opProfile, err)
			} else {
				res.profile = toProfile(u)
			}
		}
	}

	// Organization.
	switch {
	case redo[1]:
		res.org, res.orgErr = c.readOrganization(rctx, st)
	default:
		if res.orgErr = stepError(opOrganization, permUser, items[1]); res.orgErr == nil {
			col, err := parseStep[models.OrganizationCollectionResponseable](items[1], models.CreateOrganizationCollectionResponseFromDiscriminatorValue)
			if err != nil {
				res.orgErr = fmt.Errorf("%s: %w", opOrganization, err)
			} else {
				res.org, res.orgErr = toOrganization(col.GetValue())
			}
		}
	}

	// First page of groups.
	switch {
	case redo[2]:
		res.groupsPage, res.groupsErr = c.firstGroupsPage(rctx, st)
	default:
		if res.groupsErr = stepError(opGroups, permGroupMember, items[2]); res.groupsErr == nil {
			page, err := parseStep[models.DirectoryObjectCollectionResponseable](items[2], models.CreateDirectoryObjectCollectionResponseFromDiscriminatorValue)
			if err != nil {
				res.groupsErr = fmt.Errorf("%s: %w", opGroups, err)
			} else {
				res.groupsPage = page
			}
		}
	}
	if ctx.Err() != nil {
		return res, fmt.Errorf("%s: %w", opBatch, ctx.Err())
	}
	return res, nil
}

// sendBatch sends the batch, turning a panic of the SDK's batch parser (it dereferences
// whatever the answer holds) into an error.
func sendBatch(ctx context.Context, batch msgraphcore.BatchRequest, adapter abs.RequestAdapter) (resp msgraphcore.BatchResponse, err error) {
	defer func() {
		if r := recover(); r != nil {
			resp, err = nil, fmt.Errorf("the batch answer could not be read: %v", r)
		}
	}()
	resp, err = batch.Send(ctx, adapter)
	if err == nil && resp == nil {
		err = errors.New("empty batch answer")
	}
	return resp, err
}

// readOneByOne is the fallback when $batch is refused.
func (c *Client) readOneByOne(ctx context.Context, st *accountState) batchResult {
	var res batchResult
	res.profile, res.profileErr = c.readProfile(ctx, st)
	if res.profileErr != nil {
		return res
	}
	res.org, res.orgErr = c.readOrganization(ctx, st)
	res.groupsPage, res.groupsErr = c.firstGroupsPage(ctx, st)
	return res
}

// stepError maps a failed batch step (status ≥ 400) to the package's errors.
func stepError(op, permission string, item msgraphcore.BatchItem) error {
	if item == nil || item.GetStatus() == nil {
		return &Error{Op: op, Kind: ErrUnavailable, Message: "the batch answer lacks this request"}
	}
	status := int(*item.GetStatus())
	if status < 400 {
		return nil
	}
	e := &Error{Op: op, Status: status}
	h := item.GetHeaders()
	e.RetryAfter = header(h, "Retry-After")
	e.RequestID = header(h, "request-id")
	if body := item.GetBody(); body != nil {
		if inner, ok := body["error"].(map[string]any); ok {
			e.Code, e.Message = anyString(inner["code"]), anyString(inner["message"])
		}
	}
	return classify(e, permission)
}

func anyString(v any) string {
	switch s := v.(type) {
	case string:
		return s
	case *string:
		return deref(s)
	}
	return ""
}

// parseStep parses a successful batch step's body with the SDK's model factory.
func parseStep[T serialization.Parsable](item msgraphcore.BatchItem, factory serialization.ParsableFactory) (T, error) {
	var zero T
	raw, err := json.Marshal(item.GetBody())
	if err != nil {
		return zero, fmt.Errorf("re-encoding the batch answer: %w", err)
	}
	node, err := serialization.DefaultParseNodeFactoryInstance.GetRootParseNode("application/json", raw)
	if err != nil {
		return zero, fmt.Errorf("parsing the batch answer: %w", err)
	}
	v, err := node.GetObjectValue(factory)
	if err != nil {
		return zero, fmt.Errorf("parsing the batch answer: %w", err)
	}
	t, ok := v.(T)
	if !ok {
		return zero, errors.New("the batch answer is not of the expected type")
	}
	return t, nil
}

// readProfile reads /me on its own.
func (c *Client) readProfile(ctx context.Context, st *accountState) (*profile.Profile, error) {
	rctx, rec := withRecorder(ctx)
	u, err := st.sdk.Me().Get(rctx, profileRequest())
	if err != nil {
		return nil, mapError(rctx, opProfile, permUser, err, rec)
	}
	if u == nil {
		return nil, &Error{Op: opProfile, Status: http.StatusNoContent, Message: "empty answer"}
	}
	return toProfile(u), nil
}

// readOrganization reads /organization on its own.
func (c *Client) readOrganization(ctx context.Context, st *accountState) (*profile.Organization, error) {
	rctx, rec := withRecorder(ctx)
	col, err := st.sdk.Organization().Get(rctx, orgRequest())
	if err != nil {
		return nil, mapError(rctx, opOrganization, permUser, err, rec)
	}
	if col == nil {
		return nil, &Error{Op: opOrganization, Status: http.StatusNoContent, Message: "empty answer"}
	}
	return toOrganization(col.GetValue())
}

// firstGroupsPage reads the first transitiveMemberOf page on its own.
func (c *Client) firstGroupsPage(ctx context.Context, st *accountState) (models.DirectoryObjectCollectionResponseable, error) {
	rctx, rec := withRecorder(ctx)
	page, err := st.sdk.Me().TransitiveMemberOf().Get(rctx, c.groupsRequest())
	if err != nil {
		return nil, mapError(rctx, opGroups, permGroupMember, err, rec)
	}
	return page, nil
}

// readGroups pages transitiveMemberOf to the end, starting from first (read if nil).
func (c *Client) readGroups(ctx context.Context, st *accountState, first models.DirectoryObjectCollectionResponseable) ([]profile.Group, error) {
	if first == nil {
		var err error
		if first, err = c.firstGroupsPage(ctx, st); err != nil {
			return nil, err
		}
	}
	if first == nil {
		return []profile.Group{}, nil
	}
	rctx, rec := withRecorder(ctx)
	it, err := msgraphcore.NewPageIterator[models.DirectoryObjectable](first, st.sdk.GetAdapter(), models.CreateDirectoryObjectCollectionResponseFromDiscriminatorValue)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", opGroups, err)
	}
	groups := []profile.Group{}
	seen := map[string]bool{}
	err = it.Iterate(rctx, func(o models.DirectoryObjectable) bool {
		if g, ok := toGroup(o); ok && !seen[g.ID] {
			seen[g.ID] = true
			groups = append(groups, g)
		}
		return true
	})
	if err != nil {
		return groups, mapError(rctx, opGroups, permGroupMember, err, rec)
	}
	return groups, nil
}

// readPhoto reads /me/photo/$value; no photo (404) is nil and no error.
func (c *Client) readPhoto(ctx context.Context, st *accountState) (*profile.Photo, error) {
	rctx, rec := withRecorder(ctx)
	data, err := st.sdk.Me().Photo().Content().Get(rctx, nil)
	if err != nil {
		mapped := mapError(rctx, opPhoto, permUser, err, rec)
		if ge := (*Error)(nil); errors.As(mapped, &ge) && ge.Status == http.StatusNotFound {
			return nil, nil // ImageNotFound: the user has no photo
		}
		return nil, mapped
	}
	if len(data) == 0 {
		return nil, nil
	}
	ct := rec.last().contentType
	if i := strings.IndexByte(ct, ';'); i >= 0 {
		ct = ct[:i]
	}
	ct = strings.TrimSpace(ct)
	if !strings.HasPrefix(ct, "image/") {
		ct = http.DetectContentType(data)
	}
	return &profile.Photo{ContentType: ct, Data: data}, nil
}

func toProfile(u models.Userable) *profile.Profile {
	return &profile.Profile{
		ID:                deref(u.GetId()),
		DisplayName:       deref(u.GetDisplayName()),
		GivenName:         deref(u.GetGivenName()),
		Surname:           deref(u.GetSurname()),
		Mail:              deref(u.GetMail()),
		UserPrincipalName: deref(u.GetUserPrincipalName()),
		JobTitle:          deref(u.GetJobTitle()),
		Department:        deref(u.GetDepartment()),
		OfficeLocation:    deref(u.GetOfficeLocation()),
		MobilePhone:       deref(u.GetMobilePhone()),
		BusinessPhones:    slices.Clone(u.GetBusinessPhones()),
		PreferredLanguage: deref(u.GetPreferredLanguage()),
		UserType:          deref(u.GetUserType()),
	}
}

func toOrganization(orgs []models.Organizationable) (*profile.Organization, error) {
	if len(orgs) == 0 {
		return nil, &Error{Op: opOrganization, Status: http.StatusOK, Message: "Graph listed no organization"}
	}
	o := orgs[0]
	out := &profile.Organization{TenantID: deref(o.GetId()), DisplayName: deref(o.GetDisplayName())}
	for _, d := range o.GetVerifiedDomains() {
		out.VerifiedDomains = append(out.VerifiedDomains, profile.VerifiedDomain{
			Name: deref(d.GetName()), IsDefault: deref(d.GetIsDefault()), IsInitial: deref(d.GetIsInitial()),
		})
	}
	return out, nil
}

// toGroup maps a membership. Items are typed (Groupable, DirectoryRoleable) only when Graph
// sends @odata.type; others become KindUnknown.
func toGroup(o models.DirectoryObjectable) (profile.Group, bool) {
	if o == nil || deref(o.GetId()) == "" {
		return profile.Group{}, false
	}
	g := profile.Group{ID: deref(o.GetId()), Kind: profile.KindUnknown}
	switch v := o.(type) {
	case models.Groupable:
		g.DisplayName = deref(v.GetDisplayName())
		g.Kind = groupKind(v.GetGroupTypes(), deref(v.GetMailEnabled()), deref(v.GetSecurityEnabled()))
	case models.DirectoryRoleable:
		g.DisplayName = deref(v.GetDisplayName())
		g.Kind = profile.KindRole
	default:
		if ad := o.GetAdditionalData(); ad != nil {
			g.DisplayName = anyString(ad["displayName"])
		}
		switch strings.TrimPrefix(deref(o.GetOdataType()), "#") {
		case "microsoft.graph.directoryRole":
			g.Kind = profile.KindRole
		}
	}
	return g, true
}

// groupKind tells a group's kind from groupTypes, mailEnabled and securityEnabled.
func groupKind(types []string, mail, security bool) profile.GroupKind {
	for _, t := range types {
		if strings.EqualFold(t, "Unified") {
			return profile.KindMicrosoft365
		}
	}
	switch {
	case security && !mail:
		return profile.KindSecurity
	case security && mail:
		return profile.KindMailSecurity
	case mail:
		return profile.KindDistribution
	}
	return profile.KindUnknown
}

// header looks a batch step's header up case-insensitively.
func header(h msgraphcore.RequestHeader, name string) string {
	for k, v := range h {
		if strings.EqualFold(k, name) {
			return v
		}
	}
	return ""
}
