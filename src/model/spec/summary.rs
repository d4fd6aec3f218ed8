//! An architecture's table like Keras's `model.summary()`.

use super::layers::Architecture;
use super::params::ParamInfo;
use crate::Result;

impl Architecture {
    /// A table like Keras's `model.summary()`: each layer's type, output shape (with the batch as
    /// `None`) and parameter count, then the total, trainable and non-trainable parameters.
    pub fn summary(&self) -> Result<String> {
        let layers = self.layers_info()?;
        let rows: Vec<[String; 3]> = layers
            .iter()
            .map(|layer| {
                let shape: Vec<String> =
                    std::iter::once("None".to_string()).chain(layer.output.iter().map(usize::to_string)).collect();
                let count: usize = layer.params.iter().map(ParamInfo::elements).sum();
                [
                    format!("{} ({})", layer.name, layer.spec.kind().definition().keras_type),
                    format!("({})", shape.join(", ")),
                    grouped(count as u64),
                ]
            })
            .collect();
        let header = ["Layer (type)".to_string(), "Output Shape".to_string(), "Param #".to_string()];
        let widths: Vec<usize> =
            (0..3).map(|col| rows.iter().chain([&header]).map(|row| row[col].len()).max().unwrap_or(0)).collect();
        let line = |row: &[String; 3]| {
            format!(
                " {:<w0$}   {:<w1$}   {:>w2$}\n",
                row[0],
                row[1],
                row[2],
                w0 = widths[0],
                w1 = widths[1],
                w2 = widths[2]
            )
        };
        let rule_width = widths.iter().sum::<usize>() + 8;
        let params = layers.iter().flat_map(|layer| &layer.params);
        let (trainable, frozen) = params.fold((0u64, 0u64), |(trainable, frozen), param| {
            let n = param.elements() as u64;
            if param.trainable { (trainable + n, frozen) } else { (trainable, frozen + n) }
        });
        let mut table = format!("Architecture: {self} (input {})\n", self.input);
        table += &format!("{}\n", "_".repeat(rule_width));
        table += &line(&header);
        table += &format!("{}\n", "=".repeat(rule_width));
        for row in &rows {
            table += &line(row);
        }
        table += &format!("{}\n", "=".repeat(rule_width));
        for (label, count) in [("Total", trainable + frozen), ("Trainable", trainable), ("Non-trainable", frozen)] {
            table += &format!(" {label} params: {} ({})\n", grouped(count), f32_size(count));
        }
        table += &format!("{}\n", "_".repeat(rule_width));
        Ok(table)
    }
}

/// `1,648,193`.
fn grouped(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

/// The memory of `count` f32 values, as Keras prints it: `6.29 MB`.
fn f32_size(count: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KB", "MB", "GB", "TB"];
    let mut size = count as f64 * 4.0;
    let mut unit = 0;
    while size >= 1024.0 && unit + 1 < UNITS.len() {
        size /= 1024.0;
        unit += 1;
    }
    format!("{size:.2} {}", UNITS[unit])
}
