//! Builders for the rows the end-to-end tests start from: clients, their
//! destinations, queued deliveries, and widget event batches.

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{json, Value};
use tokio_postgres::types::ToSql;
use uuid::Uuid;

use crate::TestDb;

/// A client row: only the columns set here are written (`name` is `c`
/// unless set), e.g. `ClientSpec::new().root_domain("shop.com").insert(&db)`.
#[derive(Default)]
pub struct ClientSpec {
    columns: Vec<(&'static str, Box<dyn ToSql + Sync + Send>)>,
}

macro_rules! columns {
    ($($column:ident: $t:ty),* $(,)?) => {
        $(
            #[doc = concat!("Sets `", stringify!($column), "`.")]
            pub fn $column(mut self, value: $t) -> Self {
                self.columns.push((stringify!($column), Box::new(value.to_owned())));
                self
            }
        )*
    };
}

impl ClientSpec {
    pub fn new() -> ClientSpec {
        ClientSpec::default()
    }

    columns!(
        name: &str,
        root_domain: &str,
        client_type: &str,
        enabled: bool,
        allow_localhost: bool,
        time_zone: &str,
        lead_contact_required: bool,
        default_country: &str,
    );

    /// Inserts the client and returns its id.
    pub async fn insert(&self, db: &TestDb) -> Uuid {
        let id = Uuid::new_v4();
        let mut columns = vec!["id"];
        let mut params: Vec<&(dyn ToSql + Sync)> = vec![&id];
        if !self.columns.iter().any(|(c, _)| *c == "name") {
            columns.push("name");
            params.push(&"c");
        }
        for (column, value) in &self.columns {
            columns.push(column);
            params.push(value.as_ref());
        }
        let placeholders: Vec<String> = (1..=columns.len()).map(|i| format!("${i}")).collect();
        let sql = format!(
            "INSERT INTO clients ({}) VALUES ({})",
            columns.join(", "),
            placeholders.join(", ")
        );
        db.client().await.execute(&sql, &params).await.unwrap();
        id
    }
}

/// A destination of `kind` for `client` with this config; its id.
pub async fn destination(db: &TestDb, client: Uuid, kind: &str, config: Value) -> Uuid {
    db.client()
        .await
        .query_one(
            "INSERT INTO client_destinations (client_id, kind, config) VALUES ($1, $2, $3) RETURNING id",
            &[&client, &kind, &config],
        )
        .await
        .unwrap()
        .get(0)
}

/// Outbox rows (`conversion_deliveries`) for one destination, `Lead` events:
/// by default one row with a random event id, occurring now, `{}` payload and
/// user data, status and next retry as the table defaults them.
#[derive(Clone, Debug)]
pub struct Deliveries {
    destination: Uuid,
    count: usize,
    prefix: Option<String>,
    ids: Option<Vec<String>>,
    age: String,
    payload: Value,
    user_data: Value,
    status: Option<String>,
    due: bool,
}

impl Deliveries {
    pub fn to(destination: Uuid) -> Deliveries {
        Deliveries {
            destination,
            count: 1,
            prefix: None,
            ids: None,
            age: "0 seconds".into(),
            payload: json!({}),
            user_data: json!({}),
            status: None,
            due: false,
        }
    }

    /// How many rows.
    pub fn count(mut self, n: usize) -> Self {
        self.count = n;
        self
    }

    /// Event ids `<prefix>-1` … `<prefix>-<count>`.
    pub fn event_ids(mut self, prefix: &str) -> Self {
        self.prefix = Some(prefix.into());
        self
    }

    /// Exactly these event ids (one row each).
    pub fn ids(mut self, ids: &[String]) -> Self {
        self.ids = Some(ids.to_vec());
        self
    }

    /// How long ago the events occurred (a Postgres interval).
    pub fn event_age(mut self, age: &str) -> Self {
        self.age = age.into();
        self
    }

    pub fn payload(mut self, payload: Value) -> Self {
        self.payload = payload;
        self
    }

    pub fn user_data(mut self, user_data: Value) -> Self {
        self.user_data = user_data;
        self
    }

    pub fn status(mut self, status: &str) -> Self {
        self.status = Some(status.into());
        self
    }

    /// Due a second ago.
    pub fn due(mut self) -> Self {
        self.due = true;
        self
    }

    pub async fn insert(&self, db: &TestDb) {
        let ids: Vec<String> = match (&self.ids, &self.prefix) {
            (Some(ids), _) => ids.clone(),
            (None, Some(p)) => (1..=self.count).map(|i| format!("{p}-{i}")).collect(),
            (None, None) => (0..self.count)
                .map(|_| Uuid::new_v4().to_string())
                .collect(),
        };
        let mut params: Vec<&(dyn ToSql + Sync)> = vec![
            &self.destination,
            &ids,
            &self.age,
            &self.payload,
            &self.user_data,
        ];
        let mut columns = String::new();
        let mut values = String::new();
        if let Some(status) = &self.status {
            columns.push_str(", status");
            values.push_str(", $6");
            params.push(status);
        }
        if self.due {
            columns.push_str(", next_retry_at");
            values.push_str(", now() - interval '1 second'");
        }
        let sql = format!(
            "INSERT INTO conversion_deliveries (client_id, destination_id, destination, event_id, event_name,
                                                event_time, event_payload, user_data{columns})
             SELECT d.client_id, d.id, d.kind, e.id, 'Lead', now() - $3::text::interval, $4, $5{values}
               FROM client_destinations d, unnest($2::text[]) WITH ORDINALITY AS e(id, n)
              WHERE d.id = $1
              ORDER BY e.n"
        );
        db.client().await.execute(&sql, &params).await.unwrap();
    }
}

/// A widget event as the script sends it: a fresh event id, `at` in
/// milliseconds.
pub fn widget_event(name: &str, at: DateTime<Utc>, page: &str) -> Value {
    json!({
        "event_id": Uuid::new_v4(), "name": name,
        "timestamp": at.to_rfc3339_opts(SecondsFormat::Millis, true), "page_url": page,
    })
}

/// A `POST /v1/events` body from `visitor` (no context, no session id).
pub fn widget_batch(client: Uuid, visitor: &str, events: Vec<Value>) -> Value {
    json!({ "client_id": client, "anonymous_id": visitor, "events": events })
}
