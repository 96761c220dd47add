//! Spin's type mapping between tokio-postgres and `spin:postgres@4.0.0`:
//! column types, row values, statement parameters and errors (with their
//! SQLSTATE). Like Spin, a `timestamptz` column is decoded as a naive
//! timestamp, which fails: components select `extract(epoch from ...)` or
//! text instead, and tests here catch it. Other column types come through as
//! `unsupported` raw bytes; range parameters are refused.

use bytes::BytesMut;
use chrono::{Datelike, NaiveDate, NaiveDateTime, NaiveTime, Timelike};
use tokio_postgres::types::{FromSql, IsNull, ToSql, Type};

use crate::bindings::pg::{
    Column, DbDataType, DbError, DbValue, Error, Interval, ParameterValue, QueryError,
};

/// A statement failed: Postgres' own error with its fields, or the client's,
/// both worded as Spin does (`{:?}` of tokio-postgres' error, e.g.
/// `Error { kind: Closed, cause: None }` for a connection the server closed),
/// since components read these words.
pub fn query_failed(e: tokio_postgres::Error) -> Error {
    let flattened = format!("{e:?}");
    if let Some(db) = e.as_db_error() {
        let mut extras = Vec::new();
        for (k, v) in [
            ("hint", db.hint()),
            ("where", db.where_()),
            ("schema", db.schema()),
            ("table", db.table()),
            ("column", db.column()),
            ("constraint", db.constraint()),
        ] {
            if let Some(v) = v {
                extras.push((k.to_string(), v.to_string()));
            }
        }
        return Error::QueryFailed(QueryError::DbError(DbError {
            as_text: flattened,
            severity: db.severity().to_string(),
            code: db.code().code().to_string(),
            message: db.message().to_string(),
            detail: db.detail().map(str::to_string),
            extras,
        }));
    }
    Error::QueryFailed(QueryError::Text(flattened))
}

/// A prepared statement's columns, as the guest sees them.
pub fn columns(columns: &[tokio_postgres::Column]) -> Vec<Column> {
    columns
        .iter()
        .map(|c| Column {
            name: c.name().to_string(),
            data_type: data_type(c.type_()),
        })
        .collect()
}

/// A row's values, in column order.
pub fn row_values(row: &tokio_postgres::Row) -> PgResult<Vec<DbValue>> {
    (0..row.len()).map(|i| db_value(row, i)).collect()
}

/// The WIT type of a column of Postgres type `t`.
fn data_type(t: &Type) -> DbDataType {
    match *t {
        Type::BOOL => DbDataType::Boolean,
        Type::CHAR => DbDataType::Int8,
        Type::INT2 => DbDataType::Int16,
        Type::INT4 => DbDataType::Int32,
        Type::INT8 => DbDataType::Int64,
        Type::FLOAT4 => DbDataType::Floating32,
        Type::FLOAT8 => DbDataType::Floating64,
        Type::TEXT | Type::VARCHAR | Type::BPCHAR => DbDataType::Str,
        Type::BYTEA => DbDataType::Binary,
        Type::DATE => DbDataType::Date,
        Type::TIME => DbDataType::Time,
        Type::TIMESTAMP | Type::TIMESTAMPTZ => DbDataType::Datetime,
        Type::UUID => DbDataType::Uuid,
        Type::JSONB => DbDataType::Jsonb,
        Type::NUMERIC => DbDataType::Decimal,
        Type::INT4_ARRAY => DbDataType::ArrayInt32,
        Type::INT8_ARRAY => DbDataType::ArrayInt64,
        Type::NUMERIC_ARRAY => DbDataType::ArrayDecimal,
        Type::TEXT_ARRAY | Type::VARCHAR_ARRAY | Type::BPCHAR_ARRAY => DbDataType::ArrayStr,
        Type::INTERVAL => DbDataType::Interval,
        ref other => DbDataType::Other(other.name().to_string()),
    }
}

/// A tokio-postgres result.
pub type PgResult<T> = Result<T, tokio_postgres::Error>;

/// Column `i` of `row` as a WIT value (NULL as `db-null`).
fn db_value(row: &tokio_postgres::Row, i: usize) -> PgResult<DbValue> {
    fn get<'a, T: FromSql<'a>>(row: &'a tokio_postgres::Row, i: usize) -> PgResult<Option<T>> {
        row.try_get::<_, Option<T>>(i)
    }
    let t = row.columns()[i].type_().clone();
    let v = match t {
        Type::BOOL => get::<bool>(row, i)?.map(DbValue::Boolean),
        Type::CHAR => get::<i8>(row, i)?.map(DbValue::Int8),
        Type::INT2 => get::<i16>(row, i)?.map(DbValue::Int16),
        Type::INT4 => get::<i32>(row, i)?.map(DbValue::Int32),
        Type::INT8 => get::<i64>(row, i)?.map(DbValue::Int64),
        Type::FLOAT4 => get::<f32>(row, i)?.map(DbValue::Floating32),
        Type::FLOAT8 => get::<f64>(row, i)?.map(DbValue::Floating64),
        Type::TEXT | Type::VARCHAR | Type::BPCHAR => get::<String>(row, i)?.map(DbValue::Str),
        Type::BYTEA => get::<Vec<u8>>(row, i)?.map(DbValue::Binary),
        Type::DATE => get::<NaiveDate>(row, i)?
            .map(|d| DbValue::Date((d.year(), d.month() as u8, d.day() as u8))),
        Type::TIME => get::<NaiveTime>(row, i)?.map(|t| {
            DbValue::Time((
                t.hour() as u8,
                t.minute() as u8,
                t.second() as u8,
                t.nanosecond(),
            ))
        }),
        // As in Spin, timestamptz is decoded as a naive timestamp, which fails.
        Type::TIMESTAMP | Type::TIMESTAMPTZ => get::<NaiveDateTime>(row, i)?.map(|dt| {
            DbValue::Datetime((
                dt.year(),
                dt.month() as u8,
                dt.day() as u8,
                dt.hour() as u8,
                dt.minute() as u8,
                dt.second() as u8,
                dt.nanosecond(),
            ))
        }),
        Type::UUID => get::<uuid::Uuid>(row, i)?.map(|u| DbValue::Uuid(u.hyphenated().to_string())),
        Type::JSONB => get::<serde_json::Value>(row, i)?
            .map(|j| DbValue::Jsonb(serde_json::to_vec(&j).unwrap_or_default())),
        Type::NUMERIC => {
            get::<rust_decimal::Decimal>(row, i)?.map(|d| DbValue::Decimal(d.to_string()))
        }
        Type::INT4_ARRAY => get::<Vec<Option<i32>>>(row, i)?.map(DbValue::ArrayInt32),
        Type::INT8_ARRAY => get::<Vec<Option<i64>>>(row, i)?.map(DbValue::ArrayInt64),
        Type::NUMERIC_ARRAY => get::<Vec<Option<rust_decimal::Decimal>>>(row, i)?.map(|v| {
            DbValue::ArrayDecimal(v.into_iter().map(|d| d.map(|d| d.to_string())).collect())
        }),
        Type::TEXT_ARRAY | Type::VARCHAR_ARRAY | Type::BPCHAR_ARRAY => {
            get::<Vec<Option<String>>>(row, i)?.map(DbValue::ArrayStr)
        }
        Type::INTERVAL => get::<SqlInterval>(row, i)?.map(|iv| DbValue::Interval(iv.0)),
        _ => get::<RawValue>(row, i)?.map(|raw| DbValue::Unsupported(raw.0)),
    };
    Ok(v.unwrap_or(DbValue::DbNull))
}

/// A statement parameter, converted from its WIT value.
pub type BoxedParam = Box<dyn ToSql + Send + Sync>;

/// The parameters as tokio-postgres takes them.
pub fn param_refs(params: &[BoxedParam]) -> Vec<&(dyn ToSql + Sync)> {
    params
        .iter()
        .map(|p| p.as_ref() as &(dyn ToSql + Sync))
        .collect()
}

/// Converts the guest's parameters; `bad` makes the error for an invalid
/// value (`query` and `execute` report it differently, as Spin does).
pub fn to_sql_params(
    params: Vec<ParameterValue>,
    bad: fn(String) -> Error,
) -> Result<Vec<BoxedParam>, Error> {
    params.into_iter().map(|p| to_sql(p, bad)).collect()
}

fn to_sql(p: ParameterValue, bad: fn(String) -> Error) -> Result<BoxedParam, Error> {
    use ParameterValue as P;
    Ok(match p {
        P::Boolean(v) => Box::new(v),
        P::Int8(v) => Box::new(v),
        P::Int16(v) => Box::new(v),
        P::Int32(v) => Box::new(v),
        P::Int64(v) => Box::new(v),
        P::Floating32(v) => Box::new(v),
        P::Floating64(v) => Box::new(v),
        P::Str(v) => Box::new(v),
        P::Binary(v) => Box::new(v),
        P::Date((y, m, d)) => Box::new(
            NaiveDate::from_ymd_opt(y, m.into(), d.into())
                .ok_or_else(|| bad(format!("invalid date y={y}, m={m}, d={d}")))?,
        ),
        P::Time((h, m, s, ns)) => Box::new(
            NaiveTime::from_hms_nano_opt(h.into(), m.into(), s.into(), ns)
                .ok_or_else(|| bad(format!("invalid time {h}:{m}:{s}:{ns}")))?,
        ),
        P::Datetime((y, mo, d, h, mi, s, ns)) => {
            let date = NaiveDate::from_ymd_opt(y, mo.into(), d.into())
                .ok_or_else(|| bad(format!("invalid date y={y}, m={mo}, d={d}")))?;
            let time = NaiveTime::from_hms_nano_opt(h.into(), mi.into(), s.into(), ns)
                .ok_or_else(|| bad(format!("invalid time {h}:{mi}:{s}:{ns}")))?;
            Box::new(NaiveDateTime::new(date, time))
        }
        P::Timestamp(secs) => Box::new(
            chrono::DateTime::<chrono::Utc>::from_timestamp(secs, 0)
                .ok_or_else(|| bad(format!("timestamp {secs} out of range")))?,
        ),
        P::Uuid(s) => Box::new(
            uuid::Uuid::parse_str(&s).map_err(|e| bad(format!("invalid uuid {s:?}: {e}")))?,
        ),
        P::Jsonb(bytes) => Box::new(
            serde_json::from_slice::<serde_json::Value>(&bytes)
                .map_err(|e| bad(format!("invalid jsonb: {e}")))?,
        ),
        P::Decimal(s) => Box::new(parse_decimal(&s).map_err(bad)?),
        P::ArrayInt32(v) => Box::new(v),
        P::ArrayInt64(v) => Box::new(v),
        P::ArrayDecimal(v) => Box::new(
            v.into_iter()
                .map(|d| d.map(|d| parse_decimal(&d)).transpose())
                .collect::<Result<Vec<_>, _>>()
                .map_err(bad)?,
        ),
        P::ArrayStr(v) => Box::new(v),
        P::Interval(i) => Box::new(SqlInterval(i)),
        P::DbNull => Box::new(SqlNull),
        P::RangeInt32(_) | P::RangeInt64(_) | P::RangeDecimal(_) => {
            return Err(bad(
                "range parameters are not supported by the local host".into()
            ))
        }
    })
}

fn parse_decimal(s: &str) -> Result<rust_decimal::Decimal, String> {
    rust_decimal::Decimal::from_str_exact(s).map_err(|e| format!("invalid decimal {s:?}: {e}"))
}

/// NULL of whatever type the statement expects.
#[derive(Debug)]
struct SqlNull;

impl ToSql for SqlNull {
    fn to_sql(
        &self,
        _: &Type,
        _: &mut BytesMut,
    ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        Ok(IsNull::Yes)
    }
    fn accepts(_: &Type) -> bool {
        true
    }
    tokio_postgres::types::to_sql_checked!();
}

/// Postgres `interval` in its binary form: microseconds, days, months.
#[derive(Debug)]
struct SqlInterval(Interval);

impl ToSql for SqlInterval {
    fn to_sql(
        &self,
        _: &Type,
        out: &mut BytesMut,
    ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        out.extend_from_slice(&self.0.micros.to_be_bytes());
        out.extend_from_slice(&self.0.days.to_be_bytes());
        out.extend_from_slice(&self.0.months.to_be_bytes());
        Ok(IsNull::No)
    }
    fn accepts(t: &Type) -> bool {
        *t == Type::INTERVAL
    }
    tokio_postgres::types::to_sql_checked!();
}

impl<'a> FromSql<'a> for SqlInterval {
    fn from_sql(_: &Type, raw: &'a [u8]) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        if raw.len() != 16 {
            return Err("interval must be 16 bytes".into());
        }
        Ok(SqlInterval(Interval {
            micros: i64::from_be_bytes(raw[0..8].try_into()?),
            days: i32::from_be_bytes(raw[8..12].try_into()?),
            months: i32::from_be_bytes(raw[12..16].try_into()?),
        }))
    }
    fn accepts(t: &Type) -> bool {
        *t == Type::INTERVAL
    }
}

/// Any other type, passed on as its binary wire form (`db-value::unsupported`).
struct RawValue(Vec<u8>);

impl<'a> FromSql<'a> for RawValue {
    fn from_sql(_: &Type, raw: &'a [u8]) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        Ok(RawValue(raw.to_vec()))
    }
    fn accepts(_: &Type) -> bool {
        true
    }
}
