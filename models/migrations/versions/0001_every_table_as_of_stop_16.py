"""every table as of stop 16

Revision ID: 0001
Revises: (none: the first)
Created: 2026-12-02 06:04:34.708160
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import models.encrypted
import models.money

revision: str = '0001'
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('api_key',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('account_id', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('scope', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('prefix', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('key_hash', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('label', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('created_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('revoked_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('key_hash'),
    sa.UniqueConstraint('prefix')
    )
    with op.batch_alter_table('api_key', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_api_key_account_id'), ['account_id'], unique=False)

    op.create_table('autopay_config',
    sa.Column('account_id', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('customer_id', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('config_id', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('config', sa.JSON(), nullable=False),
    sa.Column('updated_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('account_id', 'customer_id', 'config_id')
    )
    op.create_table('collected_payment',
    sa.Column('account_id', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('collection_key', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('proposal_id', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('source', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('method', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('payment_method_id', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('amount', models.money.DecimalColumn(18, 2), nullable=False),
    sa.Column('tip', models.money.DecimalColumn(18, 2), nullable=False),
    sa.Column('convenience_fee', models.money.DecimalColumn(18, 2), nullable=False),
    sa.Column('surcharge', models.money.DecimalColumn(18, 2), nullable=False),
    sa.Column('received_on', sa.Date(), nullable=False),
    sa.Column('status', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('transaction_id', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('crm_payment_id', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('message', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('account_id', 'collection_key')
    )
    with op.batch_alter_table('collected_payment', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_collected_payment_proposal_id'), ['proposal_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_collected_payment_status'), ['status'], unique=False)
        batch_op.create_index(batch_op.f('ix_collected_payment_transaction_id'), ['transaction_id'], unique=False)

    op.create_table('collection_turn',
    sa.Column('account_id', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('proposal_id', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('account_id', 'proposal_id')
    )
    op.create_table('crm_credential',
    sa.Column('account_id', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('access_token', models.encrypted.EncryptedText(), nullable=False),
    sa.Column('web_key', models.encrypted.EncryptedText(), nullable=False),
    sa.PrimaryKeyConstraint('account_id')
    )
    op.create_table('crm_record',
    sa.Column('account_id', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('key', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('record_id', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('claimed_by', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('claimed_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('data', sa.JSON(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('account_id', 'key')
    )
    op.create_table('crm_sync_cursor',
    sa.Column('account_id', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('cursor', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('account_id')
    )
    op.create_table('franchisor',
    sa.Column('id', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('time_zone', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('royalty', sa.JSON(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_table('gateway_credential',
    sa.Column('account_id', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('api_key', models.encrypted.EncryptedText(), nullable=False),
    sa.PrimaryKeyConstraint('account_id')
    )
    op.create_table('lead_key',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('account_id', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('scope', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('channel', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('lead_source', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('prefix', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('key_hash', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('api_key_hash', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('created_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('revoked_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('key_hash'),
    sa.UniqueConstraint('prefix')
    )
    with op.batch_alter_table('lead_key', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_lead_key_account_id'), ['account_id'], unique=False)

    op.create_table('lead_receipt',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('account_id', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('channel', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('lead_id', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('who', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('received_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('outcome', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.Column('contact_id', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('workflow_id', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('run_id', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('settled_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('lead_receipt', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_lead_receipt_account_id'), ['account_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_lead_receipt_received_at'), ['received_at'], unique=False)

    op.create_table('ledger_invoice',
    sa.Column('account_id', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('proposal_id', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('realm_id', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('invoice_id', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('customer_id', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('contact_id', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('number', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('total', models.money.DecimalColumn(18, 2), nullable=False),
    sa.Column('line_items', sa.JSON(), nullable=False),
    sa.Column('issued_on', sa.Date(), nullable=False),
    sa.Column('due_on', sa.Date(), nullable=False),
    sa.Column('autopay_excluded', sa.Boolean(), nullable=False),
    sa.PrimaryKeyConstraint('account_id', 'proposal_id')
    )
    with op.batch_alter_table('ledger_invoice', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_ledger_invoice_customer_id'), ['customer_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_ledger_invoice_invoice_id'), ['invoice_id'], unique=False)

    op.create_table('ledger_payment',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('account_id', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('crm_payment_id', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('proposal_id', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('contact_id', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('amount', models.money.DecimalColumn(18, 2), nullable=False),
    sa.Column('tip', models.money.DecimalColumn(18, 2), nullable=False),
    sa.Column('convenience_fee', models.money.DecimalColumn(18, 2), nullable=False),
    sa.Column('received_on', sa.Date(), nullable=False),
    sa.Column('method', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('qbo_payment_id', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('applied_to_invoice', models.money.DecimalColumn(18, 2), nullable=True),
    sa.Column('voided', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('voided_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('recorded_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('account_id', 'crm_payment_id')
    )
    with op.batch_alter_table('ledger_payment', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_ledger_payment_account_id'), ['account_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_ledger_payment_proposal_id'), ['proposal_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_ledger_payment_received_on'), ['received_on'], unique=False)

    op.create_table('outbox_message',
    sa.Column('idempotency_key', sa.String(length=255), nullable=False),
    sa.Column('kind', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('account_id', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('recipient', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('status', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('provider_id', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('claimed_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('attempted_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('sent_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('idempotency_key')
    )
    with op.batch_alter_table('outbox_message', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_outbox_message_account_id'), ['account_id'], unique=False)

    op.create_table('plan_enrollment',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('workflow_id', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('run_id', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('account_id', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('contact_id', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('plan_id', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('plan_version', sa.Integer(), nullable=False),
    sa.Column('source', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('phone', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('email', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('ended_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('ended', sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('workflow_id', 'run_id')
    )
    with op.batch_alter_table('plan_enrollment', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_plan_enrollment_account_id'), ['account_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_plan_enrollment_contact_id'), ['contact_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_plan_enrollment_email'), ['email'], unique=False)
        batch_op.create_index(batch_op.f('ix_plan_enrollment_phone'), ['phone'], unique=False)
        batch_op.create_index(batch_op.f('ix_plan_enrollment_plan_id'), ['plan_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_plan_enrollment_workflow_id'), ['workflow_id'], unique=False)

    op.create_table('proposal_record',
    sa.Column('account_id', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('proposal_id', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('realm_id', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('contact_id', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('number', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('stage', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('customer_id', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('estimate_id', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('invoice_id', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('unapplied_total', models.money.DecimalColumn(18, 2), nullable=False),
    sa.Column('stuck', sa.Text(), nullable=True),
    sa.Column('state', sa.Text(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('account_id', 'proposal_id')
    )
    with op.batch_alter_table('proposal_record', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_proposal_record_contact_id'), ['contact_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_proposal_record_stage'), ['stage'], unique=False)

    op.create_table('qbo_audit_log',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('realm_id', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('entity', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('operation', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('request_id', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('body', sa.Text(), nullable=False),
    sa.Column('workflow_id', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('activity_attempt', sa.Integer(), nullable=True),
    sa.Column('status', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('qbo_id', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('response', sa.Text(), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('sent_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('finished_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('qbo_audit_log', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_qbo_audit_log_realm_id'), ['realm_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_qbo_audit_log_request_id'), ['request_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_qbo_audit_log_workflow_id'), ['workflow_id'], unique=False)

    op.create_table('qbo_connection',
    sa.Column('realm_id', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('access_token', models.encrypted.EncryptedText(), nullable=True),
    sa.Column('refresh_token', models.encrypted.EncryptedText(), nullable=False),
    sa.Column('access_token_expires_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.Column('updated_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('realm_id')
    )
    op.create_table('qbo_object_map',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('account_id', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('crm_type', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('crm_id', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('qbo_entity', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('realm_id', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('qbo_id', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('created_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('account_id', 'realm_id', 'crm_type', 'crm_id', 'qbo_entity')
    )
    with op.batch_alter_table('qbo_object_map', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_qbo_object_map_account_id'), ['account_id'], unique=False)

    op.create_table('qbo_realm_call',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('realm_id', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('holder', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('started_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('finished_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('qbo_realm_call', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_qbo_realm_call_finished_at'), ['finished_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_qbo_realm_call_holder'), ['holder'], unique=False)
        batch_op.create_index(batch_op.f('ix_qbo_realm_call_realm_id'), ['realm_id'], unique=False)

    op.create_table('qbo_realm_lock',
    sa.Column('realm_id', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.PrimaryKeyConstraint('realm_id')
    )
    op.create_table('royalty_balance',
    sa.Column('account_id', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('royalty_credit', models.money.DecimalColumn(18, 2), nullable=False),
    sa.Column('marketing_credit', models.money.DecimalColumn(18, 2), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('account_id')
    )
    op.create_table('royalty_charge',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('run_id', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('franchisor_id', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('account_id', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('realm_id', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('business_date', sa.Date(), nullable=False),
    sa.Column('eligible_through', sa.Date(), nullable=False),
    sa.Column('royalty_rate', models.money.DecimalColumn(9, 6), nullable=False),
    sa.Column('marketing_rate', models.money.DecimalColumn(9, 6), nullable=False),
    sa.Column('payments', sa.Integer(), nullable=False),
    sa.Column('credits', sa.Integer(), nullable=False),
    sa.Column('basis', models.money.DecimalColumn(18, 2), nullable=False),
    sa.Column('credited_basis', models.money.DecimalColumn(18, 2), nullable=False),
    sa.Column('royalty', models.money.DecimalColumn(18, 2), nullable=False),
    sa.Column('marketing', models.money.DecimalColumn(18, 2), nullable=False),
    sa.Column('royalty_credit_in', models.money.DecimalColumn(18, 2), nullable=False),
    sa.Column('marketing_credit_in', models.money.DecimalColumn(18, 2), nullable=False),
    sa.Column('royalty_due', models.money.DecimalColumn(18, 2), nullable=False),
    sa.Column('marketing_due', models.money.DecimalColumn(18, 2), nullable=False),
    sa.Column('royalty_credit_out', models.money.DecimalColumn(18, 2), nullable=False),
    sa.Column('marketing_credit_out', models.money.DecimalColumn(18, 2), nullable=False),
    sa.Column('status', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('check_id', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('check_number', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('check_error', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('check_written_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('debit_status', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('debit_id', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('debit_error', sa.Text(), nullable=True),
    sa.Column('debited_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('run_id', 'account_id')
    )
    with op.batch_alter_table('royalty_charge', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_royalty_charge_account_id'), ['account_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_royalty_charge_business_date'), ['business_date'], unique=False)
        batch_op.create_index(batch_op.f('ix_royalty_charge_franchisor_id'), ['franchisor_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_royalty_charge_run_id'), ['run_id'], unique=False)

    op.create_table('royalty_run',
    sa.Column('run_id', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('franchisor_id', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('business_date', sa.Date(), nullable=False),
    sa.Column('eligible_through', sa.Date(), nullable=False),
    sa.Column('franchisees', sa.Integer(), nullable=False),
    sa.Column('charged', sa.Integer(), nullable=False),
    sa.Column('failed', sa.Integer(), nullable=False),
    sa.Column('royalty_total', models.money.DecimalColumn(18, 2), nullable=False),
    sa.Column('marketing_total', models.money.DecimalColumn(18, 2), nullable=False),
    sa.Column('outcomes', sa.JSON(), nullable=False),
    sa.Column('workflow_run_id', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('run_id')
    )
    with op.batch_alter_table('royalty_run', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_royalty_run_business_date'), ['business_date'], unique=False)
        batch_op.create_index(batch_op.f('ix_royalty_run_franchisor_id'), ['franchisor_id'], unique=False)

    op.create_table('sms_opt_out',
    sa.Column('phone', sa.String(length=16), nullable=False),
    sa.Column('opted_out', sa.Boolean(), nullable=False),
    sa.Column('keyword', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('changed_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('phone')
    )
    op.create_table('franchisee',
    sa.Column('account_id', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('franchisor_id', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('qbo_realm_id', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('time_zone', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('royalty_rate', models.money.DecimalColumn(9, 6), nullable=False),
    sa.Column('marketing_rate', models.money.DecimalColumn(9, 6), nullable=False),
    sa.Column('tips_bear_royalty', sa.Boolean(), nullable=False),
    sa.Column('fees_bear_royalty', sa.Boolean(), nullable=False),
    sa.Column('ach_payment_method_id', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('sales_cycle', sa.JSON(), nullable=False),
    sa.Column('action_plans', sa.JSON(), nullable=False),
    sa.Column('leads', sa.JSON(), nullable=False),
    sa.Column('payments', sa.JSON(), nullable=False),
    sa.Column('notes', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['franchisor_id'], ['franchisor.id'], ),
    sa.PrimaryKeyConstraint('account_id')
    )
    with op.batch_alter_table('franchisee', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_franchisee_franchisor_id'), ['franchisor_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_franchisee_qbo_realm_id'), ['qbo_realm_id'], unique=False)

    op.create_table('royalty_item',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('charge_id', sa.Integer(), nullable=False),
    sa.Column('account_id', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('crm_payment_id', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('proposal_id', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('kind', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('received_on', sa.Date(), nullable=False),
    sa.Column('amount', models.money.DecimalColumn(18, 2), nullable=False),
    sa.Column('tip', models.money.DecimalColumn(18, 2), nullable=False),
    sa.Column('convenience_fee', models.money.DecimalColumn(18, 2), nullable=False),
    sa.Column('basis', models.money.DecimalColumn(18, 2), nullable=False),
    sa.Column('royalty_rate', models.money.DecimalColumn(9, 6), nullable=False),
    sa.Column('marketing_rate', models.money.DecimalColumn(9, 6), nullable=False),
    sa.ForeignKeyConstraint(['charge_id'], ['royalty_charge.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('account_id', 'crm_payment_id', 'kind')
    )
    with op.batch_alter_table('royalty_item', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_royalty_item_account_id'), ['account_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_royalty_item_charge_id'), ['charge_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('royalty_item', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_royalty_item_charge_id'))
        batch_op.drop_index(batch_op.f('ix_royalty_item_account_id'))

    op.drop_table('royalty_item')
    with op.batch_alter_table('franchisee', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_franchisee_qbo_realm_id'))
        batch_op.drop_index(batch_op.f('ix_franchisee_franchisor_id'))

    op.drop_table('franchisee')
    op.drop_table('sms_opt_out')
    with op.batch_alter_table('royalty_run', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_royalty_run_franchisor_id'))
        batch_op.drop_index(batch_op.f('ix_royalty_run_business_date'))

    op.drop_table('royalty_run')
    with op.batch_alter_table('royalty_charge', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_royalty_charge_run_id'))
        batch_op.drop_index(batch_op.f('ix_royalty_charge_franchisor_id'))
        batch_op.drop_index(batch_op.f('ix_royalty_charge_business_date'))
        batch_op.drop_index(batch_op.f('ix_royalty_charge_account_id'))

    op.drop_table('royalty_charge')
    op.drop_table('royalty_balance')
    op.drop_table('qbo_realm_lock')
    with op.batch_alter_table('qbo_realm_call', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_qbo_realm_call_realm_id'))
        batch_op.drop_index(batch_op.f('ix_qbo_realm_call_holder'))
        batch_op.drop_index(batch_op.f('ix_qbo_realm_call_finished_at'))

    op.drop_table('qbo_realm_call')
    with op.batch_alter_table('qbo_object_map', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_qbo_object_map_account_id'))

    op.drop_table('qbo_object_map')
    op.drop_table('qbo_connection')
    with op.batch_alter_table('qbo_audit_log', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_qbo_audit_log_workflow_id'))
        batch_op.drop_index(batch_op.f('ix_qbo_audit_log_request_id'))
        batch_op.drop_index(batch_op.f('ix_qbo_audit_log_realm_id'))

    op.drop_table('qbo_audit_log')
    with op.batch_alter_table('proposal_record', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_proposal_record_stage'))
        batch_op.drop_index(batch_op.f('ix_proposal_record_contact_id'))

    op.drop_table('proposal_record')
    with op.batch_alter_table('plan_enrollment', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_plan_enrollment_workflow_id'))
        batch_op.drop_index(batch_op.f('ix_plan_enrollment_plan_id'))
        batch_op.drop_index(batch_op.f('ix_plan_enrollment_phone'))
        batch_op.drop_index(batch_op.f('ix_plan_enrollment_email'))
        batch_op.drop_index(batch_op.f('ix_plan_enrollment_contact_id'))
        batch_op.drop_index(batch_op.f('ix_plan_enrollment_account_id'))

    op.drop_table('plan_enrollment')
    with op.batch_alter_table('outbox_message', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_outbox_message_account_id'))

    op.drop_table('outbox_message')
    with op.batch_alter_table('ledger_payment', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_ledger_payment_received_on'))
        batch_op.drop_index(batch_op.f('ix_ledger_payment_proposal_id'))
        batch_op.drop_index(batch_op.f('ix_ledger_payment_account_id'))

    op.drop_table('ledger_payment')
    with op.batch_alter_table('ledger_invoice', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_ledger_invoice_invoice_id'))
        batch_op.drop_index(batch_op.f('ix_ledger_invoice_customer_id'))

    op.drop_table('ledger_invoice')
    with op.batch_alter_table('lead_receipt', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_lead_receipt_received_at'))
        batch_op.drop_index(batch_op.f('ix_lead_receipt_account_id'))

    op.drop_table('lead_receipt')
    with op.batch_alter_table('lead_key', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_lead_key_account_id'))

    op.drop_table('lead_key')
    op.drop_table('gateway_credential')
    op.drop_table('franchisor')
    op.drop_table('crm_sync_cursor')
    op.drop_table('crm_record')
    op.drop_table('crm_credential')
    op.drop_table('collection_turn')
    with op.batch_alter_table('collected_payment', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_collected_payment_transaction_id'))
        batch_op.drop_index(batch_op.f('ix_collected_payment_status'))
        batch_op.drop_index(batch_op.f('ix_collected_payment_proposal_id'))

    op.drop_table('collected_payment')
    op.drop_table('autopay_config')
    with op.batch_alter_table('api_key', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_api_key_account_id'))

    op.drop_table('api_key')
