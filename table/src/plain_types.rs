//! Plain string and binary types in the files deltalake's DELETE and UPDATE rewrite.
//!
//! DataFusion reads Parquet strings as `Utf8View` (binaries as `BinaryView`) unless its
//! session says otherwise, and a file written from such a scan declares those view types in
//! its `ARROW:schema`. Tarn's rewrite session turns them off ([`crate::write`]), and MERGE
//! and OPTIMIZE honour it; deltalake 1.1.3's DELETE and UPDATE plan their rewrite scan
//! without it (`scan_files_where_matches` builds its `DeltaScan` with the default config),
//! but they do plan and run the write through the session. [`PlainTypesForWrites`], a
//! physical optimizer rule of that session, casts the view-typed columns of every write
//! plan back to the plain types, so that every file Tarn writes declares what the table's
//! Delta schema maps to.

use std::sync::Arc;

use deltalake::arrow::datatypes::{DataType, Field, FieldRef};
use deltalake::datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use deltalake::datafusion::config::ConfigOptions;
use deltalake::datafusion::error::Result;
use deltalake::datafusion::physical_expr::expressions::{CastExpr, Column};
use deltalake::datafusion::physical_expr::PhysicalExpr;
use deltalake::datafusion::physical_optimizer::PhysicalOptimizerRule;
use deltalake::datafusion::physical_plan::projection::ProjectionExec;
use deltalake::datafusion::physical_plan::ExecutionPlan;

/// The operator deltalake puts into the plans whose rows it writes (appends, MERGE,
/// DELETE, UPDATE) to count them. Plans without one (the scans that find which files match
/// a predicate, whose answers deltalake reads as `Utf8View`) are left alone.
const WRITE_PLAN_MARKER: &str = "MetricObserverExec";

/// Casts a write plan's view-typed output columns to `Utf8` / `Binary` (nested ones too).
#[derive(Debug, Default)]
pub(crate) struct PlainTypesForWrites;

impl PhysicalOptimizerRule for PlainTypesForWrites {
    fn optimize(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        _config: &ConfigOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let schema = plan.schema();
        if !schema.fields().iter().any(|f| has_view_type(f.data_type())) || !is_write_plan(&plan)? {
            return Ok(plan);
        }
        let exprs: Vec<(Arc<dyn PhysicalExpr>, String)> = schema
            .fields()
            .iter()
            .enumerate()
            .map(|(i, f)| {
                let column: Arc<dyn PhysicalExpr> = Arc::new(Column::new(f.name(), i));
                let expr = if has_view_type(f.data_type()) {
                    Arc::new(CastExpr::new(column, plain_type(f.data_type()), None))
                } else {
                    column
                };
                (expr, f.name().clone())
            })
            .collect();
        Ok(Arc::new(ProjectionExec::try_new(exprs, plan)?))
    }

    fn name(&self) -> &str {
        "tarn_plain_types_for_writes"
    }

    /// The rule changes the output types, on purpose.
    fn schema_check(&self) -> bool {
        false
    }
}

/// Whether `plan` holds deltalake's row-counting write operator.
fn is_write_plan(plan: &Arc<dyn ExecutionPlan>) -> Result<bool> {
    let mut found = false;
    plan.apply(|node| {
        if node.name() == WRITE_PLAN_MARKER {
            found = true;
            return Ok(TreeNodeRecursion::Stop);
        }
        Ok(TreeNodeRecursion::Continue)
    })?;
    Ok(found)
}

/// Whether `dt` is or holds a view type.
fn has_view_type(dt: &DataType) -> bool {
    match dt {
        DataType::Utf8View | DataType::BinaryView => true,
        DataType::List(f)
        | DataType::LargeList(f)
        | DataType::FixedSizeList(f, _)
        | DataType::Map(f, _) => has_view_type(f.data_type()),
        DataType::Struct(fs) => fs.iter().any(|f| has_view_type(f.data_type())),
        DataType::Dictionary(_, v) => has_view_type(v),
        _ => false,
    }
}

/// `dt` with every view type replaced by its plain type.
fn plain_type(dt: &DataType) -> DataType {
    let field = |f: &FieldRef| -> FieldRef {
        Arc::new(Field::clone(f).with_data_type(plain_type(f.data_type())))
    };
    match dt {
        DataType::Utf8View => DataType::Utf8,
        DataType::BinaryView => DataType::Binary,
        DataType::List(f) => DataType::List(field(f)),
        DataType::LargeList(f) => DataType::LargeList(field(f)),
        DataType::FixedSizeList(f, n) => DataType::FixedSizeList(field(f), *n),
        DataType::Map(f, sorted) => DataType::Map(field(f), *sorted),
        DataType::Struct(fs) => DataType::Struct(fs.iter().map(field).collect()),
        DataType::Dictionary(k, v) => DataType::Dictionary(k.clone(), Box::new(plain_type(v))),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_view_types_become_plain_and_others_stay() {
        let inner = Arc::new(Field::new("city", DataType::Utf8View, true));
        let nested = DataType::List(Arc::new(Field::new(
            "element",
            DataType::Struct(vec![inner, Arc::new(Field::new("n", DataType::Int32, false))].into()),
            true,
        )));
        assert!(has_view_type(&nested));
        let plain = plain_type(&nested);
        assert!(!has_view_type(&plain));
        let DataType::List(element) = &plain else {
            panic!("{plain}")
        };
        let DataType::Struct(fs) = element.data_type() else {
            panic!("{plain}")
        };
        assert_eq!(fs[0].data_type(), &DataType::Utf8);
        assert_eq!(fs[1].data_type(), &DataType::Int32);
        assert!(!fs[1].is_nullable());
        assert_eq!(plain_type(&DataType::BinaryView), DataType::Binary);
        assert_eq!(plain_type(&DataType::Int64), DataType::Int64);
        assert!(!has_view_type(&DataType::Utf8));
    }
}
