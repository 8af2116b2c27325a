//! Markdown tables: the same text is printed by a bench and written to its results file.

/// A table with a header row; the first column is left-aligned, the others right-aligned
/// (they hold numbers) unless [`left_aligned`](Table::left_aligned) says otherwise.
#[derive(Debug, Clone, Default)]
pub struct Table {
    headers: Vec<String>,
    rows: Vec<Vec<String>>,
    left: usize,
}

impl Table {
    /// A table with these column headers.
    pub fn new<I, S>(headers: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self {
            headers: headers.into_iter().map(Into::into).collect(),
            rows: Vec::new(),
            left: 1,
        }
    }

    /// Left-aligns the first `columns` columns (labels, text) instead of only the first.
    pub fn left_aligned(mut self, columns: usize) -> Self {
        self.left = columns;
        self
    }

    /// Adds a row (missing cells are left empty, extra ones dropped).
    pub fn row<I, S>(&mut self, cells: I) -> &mut Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let mut cells: Vec<String> = cells.into_iter().map(Into::into).collect();
        cells.resize(self.headers.len(), String::new());
        self.rows.push(cells);
        self
    }

    /// The table as markdown, columns padded so it also reads well in a terminal.
    pub fn to_markdown(&self) -> String {
        let widths: Vec<usize> = (0..self.headers.len())
            .map(|column| {
                std::iter::once(&self.headers)
                    .chain(&self.rows)
                    .map(|row| row[column].chars().count())
                    .max()
                    .unwrap_or(0)
                    .max(3)
            })
            .collect();
        let line = |cells: &[String]| {
            let padded: Vec<String> = cells
                .iter()
                .zip(&widths)
                .enumerate()
                .map(|(column, (cell, &width))| {
                    if column < self.left {
                        format!("{cell:<width$}")
                    } else {
                        format!("{cell:>width$}")
                    }
                })
                .collect();
            format!("| {} |\n", padded.join(" | "))
        };
        let rule: Vec<String> = widths
            .iter()
            .enumerate()
            .map(|(column, &width)| {
                if column < self.left {
                    "-".repeat(width)
                } else {
                    format!("{}:", "-".repeat(width - 1))
                }
            })
            .collect();
        let mut text = line(&self.headers);
        text.push_str(&line(&rule));
        for row in &self.rows {
            text.push_str(&line(row));
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_aligned_markdown() {
        let mut table = Table::new(["target", "req/s"]);
        table.row(["direct", "12345"]).row(["gateway", "6000"]);
        assert_eq!(
            table.to_markdown(),
            "| target  | req/s |\n\
             | ------- | ----: |\n\
             | direct  | 12345 |\n\
             | gateway |  6000 |\n"
        );
    }

    #[test]
    fn text_columns_can_be_left_aligned() {
        let mut table = Table::new(["at", "to"]).left_aligned(2);
        table.row(["1 s", "open"]);
        assert_eq!(
            table.to_markdown(),
            "| at  | to   |\n| --- | ---- |\n| 1 s | open |\n"
        );
    }

    #[test]
    fn short_rows_are_padded() {
        let mut table = Table::new(["a", "b"]);
        table.row(["x"]);
        assert!(table.to_markdown().ends_with("| x   |     |\n"));
    }
}
