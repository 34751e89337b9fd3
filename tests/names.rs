//! Every name that scripts match on, in one snapshot, so that none is renamed by accident:
//! diagnostic codes, finding categories, gate standings, prevention mechanisms, deadline header
//! formats, report formats, input formats and compressions. A change here is a
//! change of the JSON schemas (docs/json-schema.md).

use abortaudit::classify::{Mechanism, Standing};
use abortaudit::ingest::{Compression, Format};
use abortaudit::model::{Category, Code};
use abortaudit::report::OutputFormat;
use abortaudit::rules::DeadlineFormat;

#[test]
fn every_code_category_format_and_compression_name() {
    let mut text = String::from("diagnostic codes:\n");
    for code in Code::ALL {
        text.push_str(&format!("  {:<22} {}\n", code.as_str(), code.description()));
    }
    text.push_str("categories:\n");
    for category in Category::ALL {
        text.push_str(&format!(
            "  {:<22} late={:<5} {}\n",
            category.as_str(),
            category.is_late(),
            category.description()
        ));
    }
    text.push_str("gate standings:\n");
    for standing in Standing::ALL {
        text.push_str(&format!("  {}\n", standing.as_str()));
    }
    text.push_str("prevention mechanisms:\n");
    for mechanism in Mechanism::ALL {
        text.push_str(&format!(
            "  {:<22} stops_writes={:<5} {}\n",
            mechanism.as_str(),
            mechanism.stops_writes(),
            mechanism.label()
        ));
    }
    text.push_str("deadline header formats:\n");
    for format in DeadlineFormat::ALL {
        text.push_str(&format!("  {}\n", format.as_str()));
    }
    text.push_str("report formats:\n");
    for format in OutputFormat::ALL {
        text.push_str(&format!("  {}\n", format.as_str()));
    }
    text.push_str("formats:\n");
    for format in Format::ALL {
        text.push_str(&format!("  {}\n", format.as_str()));
    }
    text.push_str("compressions:\n");
    for compression in Compression::ALL {
        text.push_str(&format!("  {}\n", compression.as_str()));
    }
    insta::assert_snapshot!(text);
}

#[test]
fn names_are_unique_and_read_back() {
    let codes: std::collections::BTreeSet<&str> = Code::ALL.iter().map(|c| c.as_str()).collect();
    assert_eq!(codes.len(), Code::ALL.len());
    for category in Category::ALL {
        assert_eq!(Category::from_name(category.as_str()), Some(category));
    }
    let formats: std::collections::BTreeSet<&str> =
        Format::ALL.iter().map(|f| f.as_str()).collect();
    assert_eq!(formats.len(), Format::ALL.len());
}
