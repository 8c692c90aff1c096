"""The top-level properties QBO accepts per entity; anything else is fault 2010. From Intuit's v3 schema, for
the entities Ledgerflow uses."""

_COMMON = {"Id", "SyncToken", "MetaData", "domain", "sparse", "CurrencyRef", "ExchangeRate"}
_PARTY = {"Active", "AlternatePhone", "Balance", "BillAddr", "CompanyName", "DisplayName", "FamilyName", "Fax",
          "GivenName", "MiddleName", "Mobile", "PrimaryEmailAddr", "PrimaryPhone", "PrintOnCheckName", "Suffix",
          "Title", "WebAddr", "Notes"}
_SALES = {"ApplyTaxAfterDiscount", "BillAddr", "BillEmail", "ClassRef", "CustomField", "CustomerMemo",
          "CustomerRef", "DepartmentRef", "DocNumber", "EmailStatus", "GlobalTaxCalculation", "Line", "LinkedTxn",
          "PrintStatus", "PrivateNote", "SalesTermRef", "ShipAddr", "TotalAmt", "TxnDate", "TxnTaxDetail",
          "HomeTotalAmt", "ShipDate", "ShipMethodRef", "TrackingNum", "DueDate", "ProjectRef", "ShipFromAddr"}

FIELDS: dict[str, set[str]] = {
    "Customer": _COMMON | _PARTY | {"ARAccountRef", "BalanceWithJobs", "BillWithParent", "DefaultTaxCodeRef",
                                    "FullyQualifiedName", "IsProject", "Job", "Level", "OpenBalanceDate",
                                    "ParentRef", "PaymentMethodRef", "PreferredDeliveryMethod",
                                    "PrimaryTaxIdentifier", "ResaleNum", "SalesTermRef", "ShipAddr", "Taxable"},
    "Vendor": _COMMON | _PARTY | {"APAccountRef", "AcctNum", "BillRate", "TaxIdentifier", "TaxReportingBasis",
                                  "TermRef", "Vendor1099"},
    "Employee": _COMMON | _PARTY | {"BillRate", "BillableTime", "BirthDate", "CostRate", "EmailAddress",
                                    "EmployeeNumber", "Gender", "HiredDate", "Organization", "PrimaryAddr",
                                    "ReleasedDate", "SSN"},
    "Item": _COMMON | {"AbatementRate", "Active", "AssetAccountRef", "Description", "ExpenseAccountRef",
                       "FullyQualifiedName", "IncomeAccountRef", "InvStartDate", "ItemCategoryType", "Level", "Name",
                       "ParentRef", "PurchaseCost", "PurchaseDesc", "PurchaseTaxCodeRef", "PurchaseTaxIncluded",
                       "QtyOnHand", "ReverseChargeRate", "SalesTaxCodeRef", "SalesTaxIncluded", "ServiceType", "Sku",
                       "SubItem", "Taxable", "TrackQtyOnHand", "Type", "UnitPrice"},
    "Account": _COMMON | {"AccountSubType", "AccountType", "AcctNum", "Active", "Classification",
                          "CurrentBalance", "CurrentBalanceWithSubAccounts", "Description", "FullyQualifiedName",
                          "Name", "ParentRef", "SubAccount", "TaxCodeRef"},
    "Estimate": _COMMON | _SALES | {"AcceptedBy", "AcceptedDate", "ExpirationDate", "TxnStatus"},
    "Invoice": _COMMON | _SALES | {"AllowIPNPayment", "AllowOnlineACHPayment", "AllowOnlineCreditCardPayment",
                                   "Balance", "BillEmailBcc", "BillEmailCc", "DeliveryInfo", "Deposit",
                                   "DepositToAccountRef", "EInvoiceStatus", "FreeFormAddress", "HomeBalance",
                                   "InvoiceLink", "RecurDataRef", "TaxExemptionRef"},
    "CreditMemo": _COMMON | _SALES | {"Balance", "DepositToAccountRef", "PaymentMethodRef", "RemainingCredit"},
    "Payment": _COMMON | {"ARAccountRef", "CreditCardPayment", "CustomerRef", "DepositToAccountRef", "Line",
                          "PaymentMethodRef", "PaymentRefNum", "PrivateNote", "TaxExemptionRef", "TotalAmt",
                          "TransactionLocationType", "TxnDate", "TxnSource", "TxnStatus", "UnappliedAmt",
                          "ProcessPayment"},
    "Purchase": _COMMON | {"AccountRef", "Credit", "DepartmentRef", "DocNumber", "EntityRef",
                           "GlobalTaxCalculation", "Line", "LinkedTxn", "PaymentMethodRef", "PaymentType",
                           "PrintStatus", "PrivateNote", "PurchaseEx", "RemitToAddr", "TotalAmt", "TxnDate",
                           "TxnSource", "TxnTaxDetail"},
}

# Fields QBO computes: whatever a client sends for them is ignored. TotalAmt is an input only on Payment.
COMPUTED = {"Balance", "HomeBalance", "UnappliedAmt", "FullyQualifiedName", "Level", "BalanceWithJobs",
            "RemainingCredit", "HomeTotalAmt", "CurrentBalance", "CurrentBalanceWithSubAccounts", "MetaData",
            "domain", "sparse"}

NAME_LISTS = ("Customer", "Vendor", "Employee", "Item", "Account")
TRANSACTIONS = ("Estimate", "Invoice", "CreditMemo", "Payment", "Purchase")
ENTITIES = NAME_LISTS + TRANSACTIONS
