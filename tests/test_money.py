"""Money is Decimal, cents, half-up; never a float, in models or in the database."""

from decimal import Decimal

import pytest
from pydantic import BaseModel, ValidationError
from sqlalchemy import Column
from sqlmodel import Field, Session, SQLModel, create_engine

from models.money import DecimalColumn, Money, cents


class Amount(BaseModel):
    value: Money


def test_cents_round_half_up() -> None:
    assert cents(Decimal("2.675")) == Decimal("2.68")  # a float would give 2.67
    assert cents(Decimal("-2.675")) == Decimal("-2.68")
    assert cents(Decimal("0.005")) == Decimal("0.01")
    assert cents(Decimal("0.0049")) == Decimal("0.00")
    assert cents(7) == Decimal("7.00")


def test_floats_are_refused() -> None:
    with pytest.raises(TypeError):
        cents(0.1)  # type: ignore[arg-type]
    with pytest.raises(ValidationError):
        Amount(value=0.1)  # type: ignore[arg-type]


def test_money_crosses_json_as_an_exact_string() -> None:
    amount = Amount(value="10.005")  # type: ignore[arg-type]
    assert amount.value == Decimal("10.01")
    assert amount.model_dump_json() == '{"value":"10.01"}'
    assert Amount.model_validate_json(amount.model_dump_json()) == amount


class Ledger(SQLModel, table=True):
    __tablename__ = "test_money_ledger"
    id: int | None = Field(default=None, primary_key=True)
    amount: Decimal = Field(sa_column=Column(DecimalColumn(18, 6)))


def test_decimal_column_is_exact_in_sqlite(tmp_path) -> None:  # type: ignore[no-untyped-def]
    engine = create_engine(f"sqlite:///{tmp_path / 'money.db'}")
    SQLModel.metadata.create_all(engine, tables=[Ledger.__table__])  # type: ignore[list-item]
    exact = Decimal("12345678901.123456")
    with Session(engine) as session:
        session.add(Ledger(amount=exact))
        session.commit()
    with Session(engine) as session:
        stored = session.get(Ledger, 1)
    assert stored is not None and stored.amount == exact and isinstance(stored.amount, Decimal)
