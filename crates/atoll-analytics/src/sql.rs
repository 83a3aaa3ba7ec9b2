//! Small helpers for the SQL the reports send to DataFusion: conditions with
//! bound parameters (values never enter the SQL text), and reading result
//! columns as integers or text whatever Arrow type the engine chose.

use crate::{Error, Result};
use datafusion::arrow::array::{Array, AsArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Float64Type, Int64Type};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::prelude::SessionContext;
use datafusion::scalar::ScalarValue;

/// A conjunction of conditions with positional parameters (`$1`, `$2`, ...).
#[derive(Debug, Default, Clone)]
pub struct Conditions {
    clauses: Vec<String>,
    params: Vec<ScalarValue>,
}

impl Conditions {
    /// Binds a text value and returns its placeholder.
    pub fn bind(&mut self, value: &str) -> String {
        self.params.push(ScalarValue::Utf8(Some(value.to_owned())));
        format!("${}", self.params.len())
    }

    /// Adds `column = value`.
    pub fn eq(&mut self, column: &str, value: &str) -> &mut Self {
        let placeholder = self.bind(value);
        self.clauses.push(format!("{column} = {placeholder}"));
        self
    }

    /// Adds a condition written by the caller (only constant text and columns).
    pub fn raw(&mut self, clause: impl Into<String>) -> &mut Self {
        self.clauses.push(clause.into());
        self
    }

    /// The `WHERE` body.
    pub fn sql(&self) -> String {
        if self.clauses.is_empty() {
            "TRUE".to_owned()
        } else {
            self.clauses.join(" AND ")
        }
    }

    /// Runs `query` (which refers to the conditions' placeholders).
    pub async fn run(&self, context: &SessionContext, query: &str) -> Result<Table> {
        let frame = context.sql(query).await.map_err(Error::query)?;
        let frame = if self.params.is_empty() {
            frame
        } else {
            frame
                .with_param_values(self.params.clone())
                .map_err(Error::query)?
        };
        let batches = frame.collect().await.map_err(Error::query)?;
        Ok(Table { batches })
    }
}

/// Quotes an attribute name for a map lookup. Names are checked against the
/// attribute naming rule first, so this never sees a quote or a backslash.
pub fn attribute(name: &str) -> Result<String> {
    let valid = !name.is_empty()
        && name.chars().count() <= 40
        && name
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if !valid {
        return Err(Error::Invalid(format!(
            "'{name}' is not an attribute name (letters, digits, '_', '.', '-'; at most 40)"
        )));
    }
    Ok(format!("attributes['{name}']"))
}

/// Query results.
#[derive(Debug)]
pub struct Table {
    batches: Vec<RecordBatch>,
}

impl Table {
    /// A table of one batch.
    pub fn single(batch: RecordBatch) -> Table {
        Table {
            batches: vec![batch],
        }
    }

    /// Rows in all batches.
    pub fn len(&self) -> usize {
        self.batches.iter().map(RecordBatch::num_rows).sum()
    }

    /// Whether there are no rows.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A column as integers (nulls as 0; floats truncated).
    pub fn ints(&self, column: usize) -> Result<Vec<i64>> {
        let mut out = Vec::with_capacity(self.len());
        for batch in &self.batches {
            let array = batch.column(column);
            if array.data_type().is_floating() {
                let floats = cast(array, &DataType::Float64).map_err(Error::arrow)?;
                let floats = floats.as_primitive::<Float64Type>();
                out.extend((0..floats.len()).map(|i| {
                    if floats.is_null(i) {
                        0
                    } else {
                        floats.value(i) as i64
                    }
                }));
            } else {
                let ints = cast(array, &DataType::Int64).map_err(Error::arrow)?;
                let ints = ints.as_primitive::<Int64Type>();
                out.extend(
                    (0..ints.len()).map(|i| if ints.is_null(i) { 0 } else { ints.value(i) }),
                );
            }
        }
        Ok(out)
    }

    /// A column as unsigned counts.
    pub fn counts(&self, column: usize) -> Result<Vec<u64>> {
        Ok(self
            .ints(column)?
            .into_iter()
            .map(|v| v.max(0) as u64)
            .collect())
    }

    /// Columns 0, 1 and 2 as `key -> (count, count)` (grouped results by day,
    /// minute or bucket).
    pub fn keyed_counts(&self) -> Result<std::collections::HashMap<i64, (u64, u64)>> {
        let keys = self.ints(0)?;
        let first = self.counts(1)?;
        let second = self.counts(2)?;
        Ok(keys
            .into_iter()
            .zip(first.into_iter().zip(second))
            .collect())
    }

    /// A column as optional text.
    pub fn texts(&self, column: usize) -> Result<Vec<Option<String>>> {
        let mut out = Vec::with_capacity(self.len());
        for batch in &self.batches {
            let texts = cast(batch.column(column), &DataType::Utf8).map_err(Error::arrow)?;
            let texts = texts.as_string::<i32>();
            out.extend((0..texts.len()).map(|i| {
                if texts.is_null(i) {
                    None
                } else {
                    Some(texts.value(i).to_owned())
                }
            }));
        }
        Ok(out)
    }

    /// The record batches.
    pub fn batches(&self) -> &[RecordBatch] {
        &self.batches
    }
}
