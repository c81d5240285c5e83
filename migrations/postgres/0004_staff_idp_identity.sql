-- The identity-provider account a staff account is linked to: the token's `iss` and
-- `sub`. Accounts are found by these, not by the email claim (which a provider may let
-- users set without verifying it). One provider account links to at most one account.
ALTER TABLE staff ADD COLUMN idp_issuer TEXT;
ALTER TABLE staff ADD COLUMN idp_subject TEXT;
CREATE UNIQUE INDEX staff_idp_identity ON staff(idp_issuer, idp_subject);
