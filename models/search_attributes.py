"""The custom search attributes operators filter on in the Temporal UI. Keep the set small (PostgreSQL
visibility allows 10 Keyword attributes per namespace)."""

from temporalio.common import SearchAttributeKey

ACCOUNT_ID = SearchAttributeKey.for_keyword("AccountId")
CONTACT_ID = SearchAttributeKey.for_keyword("ContactId")
PROPOSAL_ID = SearchAttributeKey.for_keyword("ProposalId")
FRANCHISOR = SearchAttributeKey.for_keyword("Franchisor")
STAGE = SearchAttributeKey.for_keyword("Stage")
# "stuck" while a final QBO fault holds a step of the workflow, "ok" once it is through.
SYNC_STATUS = SearchAttributeKey.for_keyword("SyncStatus")

ALL = (ACCOUNT_ID, CONTACT_ID, PROPOSAL_ID, FRANCHISOR, STAGE, SYNC_STATUS)
