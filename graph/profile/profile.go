// Package profile holds the project's own description of who an account is — profile, photo,
// organization, groups and roles — as plain structs. It exists apart from package graph so that
// the UI can show these values without linking the Microsoft Graph SDK.
package profile

import (
	"errors"
	"fmt"
	"time"
)

// Profile is a user's directory entry as read from Graph /me.
type Profile struct {
	ID                string   `json:"id"`
	DisplayName       string   `json:"display_name"`
	GivenName         string   `json:"given_name,omitempty"`
	Surname           string   `json:"surname,omitempty"`
	Mail              string   `json:"mail,omitempty"`
	UserPrincipalName string   `json:"user_principal_name"`
	JobTitle          string   `json:"job_title,omitempty"`
	Department        string   `json:"department,omitempty"`
	OfficeLocation    string   `json:"office_location,omitempty"`
	MobilePhone       string   `json:"mobile_phone,omitempty"`
	BusinessPhones    []string `json:"business_phones,omitempty"`
	PreferredLanguage string   `json:"preferred_language,omitempty"`
	// UserType is "Member" or "Guest".
	UserType string `json:"user_type,omitempty"`
}

// Photo is a profile photo. A user without a photo has no Photo (nil), which is not an error.
type Photo struct {
	ContentType string `json:"content_type"`
	Data        []byte `json:"-"`
}

// VerifiedDomain is one of a tenant's domains.
type VerifiedDomain struct {
	Name      string `json:"name"`
	IsDefault bool   `json:"is_default,omitempty"`
	IsInitial bool   `json:"is_initial,omitempty"`
}

// Organization is the tenant the account's tokens are issued in.
type Organization struct {
	TenantID        string           `json:"tenant_id"`
	DisplayName     string           `json:"display_name"`
	VerifiedDomains []VerifiedDomain `json:"verified_domains,omitempty"`
}

// GroupKind tells what a membership is.
type GroupKind string

const (
	// KindSecurity is a security group.
	KindSecurity GroupKind = "security"
	// KindMicrosoft365 is a Microsoft 365 (unified) group.
	KindMicrosoft365 GroupKind = "microsoft365"
	// KindDistribution is a mail-enabled distribution list.
	KindDistribution GroupKind = "distribution"
	// KindMailSecurity is a mail-enabled security group.
	KindMailSecurity GroupKind = "mail_security"
	// KindRole is a directory role (e.g. Global Reader).
	KindRole GroupKind = "role"
	// KindUnknown is a membership whose kind Graph did not say (e.g. ids from the id token's
	// groups claim).
	KindUnknown GroupKind = "unknown"
)

// Group is one group or directory role the user is a (transitive) member of.
type Group struct {
	ID          string    `json:"id"`
	DisplayName string    `json:"display_name,omitempty"`
	Kind        GroupKind `json:"kind"`
}

// Snapshot is everything known about an account at one moment.
type Snapshot struct {
	AccountID    string        `json:"account_id"`
	Profile      *Profile      `json:"profile,omitempty"`
	Photo        *Photo        `json:"-"`
	Organization *Organization `json:"organization,omitempty"`
	// HomeTenantID is the user's home tenant (differs from Organization.TenantID for a guest).
	HomeTenantID string  `json:"home_tenant_id,omitempty"`
	Groups       []Group `json:"groups"`
	// GroupsErr says why Groups may be incomplete (e.g. a *ConsentError); Groups then holds
	// what the id token's groups claim had.
	GroupsErr error `json:"-"`
	// PhotoErr says why Photo could not be read (nil when the user simply has no photo).
	PhotoErr error `json:"-"`
	// OrganizationErr says why Organization could not be read.
	OrganizationErr error `json:"-"`
	// ReadAt is when the values were read from Graph.
	ReadAt time.Time `json:"read_at"`
}

// ConsentError says a Graph call was refused because the token lacks a permission.
type ConsentError struct {
	// Permission is the missing delegated permission, e.g. GroupMember.Read.All.
	Permission string
	// Op is what was being read.
	Op string
}

// Error names the missing permission and what to do.
func (e *ConsentError) Error() string {
	return fmt.Sprintf("%s: the token lacks the %s permission; sign in again with that scope or ask an admin to grant consent", e.Op, e.Permission)
}

// Is makes errors.Is(err, ErrConsent) work.
func (e *ConsentError) Is(target error) bool { return target == ErrConsent }

// ErrConsent matches any *ConsentError.
var ErrConsent = errors.New("missing permission")
