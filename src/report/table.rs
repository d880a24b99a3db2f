//! Aligned text tables for people: each column as wide as its widest cell.

use std::io::{self, Write};

/// Which side of its column a cell keeps to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Align {
    /// Text: padded on the right.
    Left,
    /// Numbers: padded on the left, so that digits line up.
    Right,
}

/// A column of a table: its title and how its cells are aligned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Column<'a> {
    /// Printed in the header line.
    pub title: &'a str,
    /// Alignment of the title and the cells.
    pub align: Align,
}

impl<'a> Column<'a> {
    /// A left-aligned column.
    pub const fn left(title: &'a str) -> Self {
        Column { title, align: Align::Left }
    }

    /// A right-aligned column.
    pub const fn right(title: &'a str) -> Self {
        Column { title, align: Align::Right }
    }
}

/// Write `rows` under a header of `columns`, two spaces between columns and
/// no trailing spaces. A row with fewer cells than columns is padded with
/// empty ones. When every title is empty there is no header line. Control
/// characters in cells are shown escaped, never sent to the terminal.
pub fn write_table<R: AsRef<[String]>>(out: &mut dyn Write, columns: &[Column<'_>], rows: &[R]) -> io::Result<()> {
    let header: Option<Vec<String>> =
        columns.iter().any(|c| !c.title.is_empty()).then(|| columns.iter().map(|c| printable(c.title)).collect());
    let body = rows.iter().map(|r| {
        let cells = r.as_ref();
        (0..columns.len()).map(|i| cells.get(i).map_or_else(String::new, |c| printable(c))).collect::<Vec<_>>()
    });
    let lines: Vec<Vec<String>> = header.into_iter().chain(body).collect();
    let mut widths = vec![0usize; columns.len()];
    for line in &lines {
        for (w, cell) in widths.iter_mut().zip(line) {
            *w = (*w).max(cell.chars().count());
        }
    }
    for cells in &lines {
        let mut line = String::new();
        for (i, ((cell, w), column)) in cells.iter().zip(&widths).zip(columns).enumerate() {
            if i > 0 {
                line.push_str("  ");
            }
            let pad = " ".repeat(w - cell.chars().count());
            match column.align {
                Align::Left => {
                    line.push_str(cell);
                    line.push_str(&pad);
                }
                Align::Right => {
                    line.push_str(&pad);
                    line.push_str(cell);
                }
            }
        }
        writeln!(out, "{}", line.trim_end())?;
    }
    Ok(())
}

/// Text safe to print on a terminal: control characters and the Unicode
/// formatting characters that reorder or hide text (bidirectional
/// overrides, zero-width marks) escaped (`\n`, `\u{202e}`); everything else
/// as is. Lines from the network and logs go through this before display.
pub fn printable(s: &str) -> String {
    s.chars().flat_map(|c| if hides_or_moves(c) { c.escape_default().collect::<Vec<_>>() } else { vec![c] }).collect()
}

/// Control characters, and format characters a terminal would obey.
pub fn hides_or_moves(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2060}'..='\u{2069}' | '\u{feff}')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn printable_escapes_controls_and_reordering_characters() {
        assert_eq!(printable("PORT 1,2\u{1b}[2J\u{202e}x"), "PORT 1,2\\u{1b}[2J\\u{202e}x");
        assert_eq!(printable("plain ü"), "plain ü");
    }

    fn render<R: AsRef<[String]>>(columns: &[Column<'_>], rows: &[R]) -> String {
        let mut out = Vec::new();
        write_table(&mut out, columns, rows).expect("write to a vector");
        String::from_utf8(out).expect("UTF-8")
    }

    fn row(cells: &[&str]) -> Vec<String> {
        cells.iter().map(|c| c.to_string()).collect()
    }

    #[test]
    fn columns_are_as_wide_as_their_widest_cell() {
        let columns = [Column::left("NAME"), Column::right("N"), Column::left("NOTE")];
        let text = render(&columns, &[row(&["a", "1", "x"]), row(&["longer", "1234", ""])]);
        assert_eq!(text, "NAME       N  NOTE\na          1  x\nlonger  1234\n");
    }

    #[test]
    fn short_rows_are_padded_and_control_characters_escaped() {
        let columns = [Column::left("A"), Column::left("B")];
        let text = render(&columns, &[row(&["x\u{1b}[2J"])]);
        assert_eq!(text, "A           B\nx\\u{1b}[2J\n");
    }

    #[test]
    fn no_header_when_every_title_is_empty() {
        let columns = [Column::left(""), Column::right("")];
        let text = render(&columns, &[row(&["sessions", "3"]), row(&["logins", "12"])]);
        assert_eq!(text, "sessions   3\nlogins    12\n");
    }
}
