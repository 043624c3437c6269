-- Employers query their own records (Social Insurance Law, art. 74): find an
-- employer's contribution records without scanning every partition.
create index contribution_employer on contribution (employer_credit_code, month)
    where employer_credit_code is not null;
