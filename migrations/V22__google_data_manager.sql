-- Issue 13: Google conversions through the Data Manager API (destination
-- kind `google_dm`; `google_ec`, the Ads API upload, stays as a legacy kind),
-- and OAuth access tokens shared by every instance.

ALTER TABLE client_destinations DROP CONSTRAINT client_destinations_kind_check;
ALTER TABLE client_destinations ADD CONSTRAINT client_destinations_kind_check
    CHECK (kind IN ('meta_capi', 'google_ec', 'google_dm', 'gtm_server', 'webhook'));
ALTER TABLE conversion_deliveries DROP CONSTRAINT conversion_deliveries_destination_check;
ALTER TABLE conversion_deliveries ADD CONSTRAINT conversion_deliveries_destination_check
    CHECK (destination IN ('meta_capi', 'google_ec', 'google_dm', 'gtm_server', 'webhook'));

-- One row per destination that refreshes its tokens (delivery::oauth): the
-- current access token and its expiry, the refresh lease (one refresher at a
-- time), and the SHA-256 of a refresh token Google refused (invalid_grant),
-- so it is not sent again until the config holds another.
CREATE TABLE oauth_tokens (
    destination_id   uuid        PRIMARY KEY REFERENCES client_destinations (id) ON DELETE CASCADE,
    access_token     text,
    expires_at       timestamptz,
    refreshed_at     timestamptz,
    refreshing_until timestamptz,
    revoked_sha256   text
);
